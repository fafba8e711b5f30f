//! `gpupatrol mcp --profiles DIR`: a Model Context Protocol server on stdio
//! (the official Rust SDK, rmcp) for coding agents.
//!
//! Scope: it serves exactly the profiles given. Every tool argument names a
//! profile (or a marker that profile declares, or literal text to look for
//! in its own log); never a host, a path or a command. Each tool runs this
//! same binary as a child with fixed arguments (`tick -p FILE --json`, …),
//! so what an agent gets is what a person gets from the command line, with
//! the same bounds, locks and opt-ins (auto-resume only where the profile
//! says so). The child's stdout is read, never passed through: our stdout
//! carries the protocol only; diagnostics go to stderr.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

use crate::cli::McpArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::profile::{AliveCheck, Profile};

/// What `wait` gives up at by default: under the 60 s request timeout of
/// the MCP TypeScript SDK (which many clients use), with room for a slow tick.
pub const WAIT_DEFAULT_S: u64 = 40;
/// The longest `wait` an agent may ask for in one call.
pub const WAIT_MAX_S: u64 = 3600;
/// The wait's pause between ticks unless asked otherwise.
pub const WAIT_INTERVAL_S: u64 = 10;

pub async fn run(args: &McpArgs, state_dir: Option<&Path>) -> Result<i32> {
    let exe = std::env::current_exe().map_err(|e| Error::Other(format!("find this program's own path: {e}")))?;
    let server = Server {
        paths: args.profiles.clone(),
        state_dir: state_dir.map(Path::to_path_buf),
        exe,
    };
    let served = server.load();
    if served.profiles.is_empty() {
        return Err(Error::Usage(format!(
            "no profile to serve in {}{}",
            shown(&args.profiles),
            served.errors.first().map(|e| format!(" ({e})")).unwrap_or_default()
        )));
    }
    eprintln!(
        "gpupatrol mcp: serving {} profile(s) from {} on stdio: {}",
        served.profiles.len(),
        shown(&args.profiles),
        names(&served.profiles)
    );
    for e in &served.errors {
        eprintln!("gpupatrol mcp: not served: {e}");
    }
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Error::Other(format!("mcp: start the session: {e}")))?;
    match service.waiting().await {
        Ok(_) => Ok(exit_codes::OK),
        Err(e) => Err(Error::Other(format!("mcp: the session ended with an error: {e}"))),
    }
}

fn shown(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn names(ps: &[Profile]) -> String {
    ps.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

pub struct Server {
    paths: Vec<PathBuf>,
    state_dir: Option<PathBuf>,
    exe: PathBuf,
}

/// The profiles as they are now on disk (read again on every call, so an
/// edit or a new file is picked up), and those that do not load.
struct Served {
    profiles: Vec<Profile>,
    errors: Vec<String>,
}

/// What a child run of gpupatrol gave.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

type ToolResult = std::result::Result<CallToolResult, String>;

impl Server {
    fn load(&self) -> Served {
        let mut errors = Vec::new();
        let mut profiles: Vec<Profile> = Vec::new();
        // one expansion for all of them: a file reached twice is one file
        let (files, bad) = super::expand_profiles(&self.paths);
        if bad > 0 {
            errors.push(format!("{bad} of {} gives no profile", shown(&self.paths)));
        }
        for f in files {
            match crate::profile::load(&f) {
                Ok(prof) => profiles.push(prof),
                Err(e) => errors.push(e.render()),
            }
        }
        // names key the state files: a name two files share is served by neither
        let mut dup: Vec<String> = Vec::new();
        for (i, p) in profiles.iter().enumerate() {
            if profiles[..i].iter().any(|q| q.name == p.name) && !dup.contains(&p.name) {
                dup.push(p.name.clone());
            }
        }
        for d in &dup {
            let files: Vec<String> = profiles
                .iter()
                .filter(|p| &p.name == d)
                .map(|p| p.file.display().to_string())
                .collect();
            errors.push(format!(
                "two profiles are named {d:?} ({}); names key the state files, so neither is served",
                files.join(", ")
            ));
        }
        profiles.retain(|p| !dup.contains(&p.name));
        Served { profiles, errors }
    }

    /// The served profile with this name, or a message that lists them.
    fn find(&self, name: &str) -> std::result::Result<Profile, String> {
        let served = self.load();
        let all = names(&served.profiles);
        served.profiles.into_iter().find(|p| p.name == name).ok_or_else(|| {
            format!("no profile named {name:?} is served here; served: {all} (tool arguments name a profile, not a host or a file)")
        })
    }

    /// Run this binary with fixed arguments. It ends on its own bounds; past
    /// `limit` it is sent SIGTERM (as when the agent cancels the call).
    async fn gp(&self, args: &[OsString], limit: Duration) -> std::result::Result<Ran, String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        if let Some(d) = &self.state_dir {
            cmd.arg("--state-dir").arg(d);
        }
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // the table status draws fits what an agent shows
            .env("COLUMNS", "100");
        let child = cmd.spawn().map_err(|e| format!("start {}: {e}", self.exe.display()))?;
        let mut guard = Term(child.id());
        let out = tokio::time::timeout(limit, child.wait_with_output()).await;
        match out {
            Ok(Ok(o)) => {
                guard.0 = None;
                Ok(Ran {
                    code: o.status.code(),
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                })
            }
            Ok(Err(e)) => Err(format!("run gpupatrol: {e}")),
            Err(_) => Err(format!(
                "gpupatrol did not finish within {}s; it was stopped (SIGTERM)",
                limit.as_secs()
            )),
        }
    }

    async fn call(&self, name: &str, args: &Map<String, Value>) -> ToolResult {
        match name {
            "tick" => self.tick(args).await,
            "status" => self.status(args).await,
            "triage" => {
                self.one(args, "triage", &["triage", "--json"], Duration::from_secs(30))
                    .await
            }
            "doctor" => {
                self.one(args, "doctor", &["doctor", "--json"], Duration::from_secs(30))
                    .await
            }
            "chain_status" => {
                self.one(
                    args,
                    "chain_status",
                    &["chain", "status", "--json"],
                    Duration::from_secs(30),
                )
                .await
            }
            "handbook" => self.handbook(args).await,
            "history" => self.history(args).await,
            "wait" => self.wait(args).await,
            other => Err(format!("no tool named {other:?}")),
        }
    }

    /// The profiles a `profiles` argument names (all served ones if absent).
    fn pick(&self, args: &Map<String, Value>) -> std::result::Result<Vec<Profile>, String> {
        let served = self.load();
        if served.profiles.is_empty() {
            return Err(format!(
                "no profile is served now{}",
                served.errors.first().map(|e| format!(" ({e})")).unwrap_or_default()
            ));
        }
        let wanted: Vec<String> = match args.get("profiles") {
            None | Some(Value::Null) => return Ok(served.profiles),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(v)) => v
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or("profiles: each must be a profile name")
                })
                .collect::<std::result::Result<_, _>>()?,
            Some(_) => return Err("profiles: a profile name or a list of them".into()),
        };
        if wanted.is_empty() {
            return Err("profiles: the list is empty (leave it out for every served profile)".into());
        }
        let mut out = Vec::new();
        for w in &wanted {
            match served.profiles.iter().find(|p| &p.name == w) {
                Some(p) => {
                    if !out.iter().any(|o: &Profile| o.name == p.name) {
                        out.push(p.clone());
                    }
                }
                None => {
                    return Err(format!(
                        "no profile named {w:?} is served here; served: {}",
                        names(&served.profiles)
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn tick(&self, args: &Map<String, Value>) -> ToolResult {
        only(args, &["profiles"])?;
        let ps = self.pick(args)?;
        let mut argv: Vec<OsString> = vec!["tick".into(), "--json".into()];
        for p in &ps {
            argv.push("-p".into());
            argv.push(p.file.clone().into());
        }
        let bound = ps.iter().map(crate::fleet::tick_bound).max().unwrap_or(0);
        let ran = self.gp(&argv, Duration::from_secs(bound + 60)).await?;
        Ok(lines_result(&ran, "reports"))
    }

    async fn status(&self, args: &Map<String, Value>) -> ToolResult {
        only(args, &["profiles"])?;
        let ps = self.pick(args)?;
        let mut argv: Vec<OsString> = vec!["status".into()];
        for p in &ps {
            argv.push("-p".into());
            argv.push(p.file.clone().into());
        }
        self.picture_and_json(argv, "profiles").await
    }

    /// A saved-state command twice (both read-only, a few ms): what a
    /// person reads first, then its `--json` objects under `key`.
    async fn picture_and_json(&self, mut argv: Vec<OsString>, key: &str) -> ToolResult {
        let picture = self.gp(&argv, Duration::from_secs(30)).await?;
        argv.push("--json".into());
        let ran = self.gp(&argv, Duration::from_secs(30)).await?;
        let mut r = lines_result(&ran, key);
        if !is_err(&r) && !picture.stdout.trim().is_empty() {
            r.content[0] = ContentBlock::text(picture.stdout.trim_end().to_string());
        }
        Ok(r)
    }

    async fn one(&self, args: &Map<String, Value>, tool: &str, cmd: &[&str], limit: Duration) -> ToolResult {
        only(args, &["profile"])?;
        let p = self.find(&need_str(args, "profile", tool)?)?;
        let mut argv: Vec<OsString> = cmd.iter().map(OsString::from).collect();
        argv.push("-p".into());
        argv.push(p.file.clone().into());
        let limit = limit + Duration::from_secs(crate::fleet::tick_bound(&p));
        let ran = self.gp(&argv, limit).await?;
        Ok(one_result(&ran))
    }

    async fn history(&self, args: &Map<String, Value>) -> ToolResult {
        only(args, &["profile"])?;
        let p = self.find(&need_str(args, "profile", "history")?)?;
        let argv: Vec<OsString> = vec!["history".into(), "-p".into(), p.file.clone().into()];
        self.picture_and_json(argv, "ticks").await
    }

    async fn handbook(&self, args: &Map<String, Value>) -> ToolResult {
        only(args, &["profile"])?;
        let p = self.find(&need_str(args, "profile", "handbook")?)?;
        let text = self.handbook_text(&p).await?;
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    async fn handbook_text(&self, p: &Profile) -> std::result::Result<String, String> {
        let argv: Vec<OsString> = vec!["handbook".into(), "-p".into(), p.file.clone().into()];
        let ran = self.gp(&argv, Duration::from_secs(30)).await?;
        if ran.code != Some(0) {
            return Err(failure(&ran));
        }
        Ok(ran.stdout)
    }

    async fn wait(&self, args: &Map<String, Value>) -> ToolResult {
        only(
            args,
            &[
                "profile",
                "marker",
                "pattern",
                "interval_seconds",
                "max_ticks",
                "max_seconds",
            ],
        )?;
        let p = self.find(&need_str(args, "profile", "wait")?)?;
        let marker = opt_str(args, "marker")?;
        let pattern = opt_str(args, "pattern")?;
        let interval = opt_u64(args, "interval_seconds", 1, 3600)?.unwrap_or(WAIT_INTERVAL_S);
        let max_seconds = opt_u64(args, "max_seconds", 1, WAIT_MAX_S)?.unwrap_or(WAIT_DEFAULT_S);
        let max_ticks = opt_u64(args, "max_ticks", 1, 100_000)?;
        let declared = markers(&p);
        let mut argv: Vec<OsString> = vec!["wait".into(), "--json".into(), "-p".into(), p.file.clone().into()];
        match (marker, pattern) {
            (Some(_), Some(_)) => return Err("wait: give marker or pattern, not both".into()),
            (Some(m), None) => {
                if !declared.contains(&m) {
                    return Err(format!(
                        "wait: {m:?} is not a marker profile {} declares; it declares: {}",
                        p.name,
                        if declared.is_empty() {
                            "none (use pattern)".to_string()
                        } else {
                            declared.join(", ")
                        }
                    ));
                }
                argv.push(format!("--marker={m}").into());
            }
            (None, Some(t)) => {
                if p.job.log.is_none() {
                    return Err(format!(
                        "wait: pattern looks in the run's own log, but profile {} has no job.log",
                        p.name
                    ));
                }
                if t.is_empty() {
                    return Err("wait: pattern must not be empty".into());
                }
                // one argument: a pattern may start with `-`
                argv.push(format!("--pattern={t}").into());
            }
            (None, None) => match declared.first() {
                Some(m) => argv.push(format!("--marker={m}").into()),
                None => {
                    return Err(format!(
                        "wait: profile {} declares no done marker; give pattern (text to wait for in its log)",
                        p.name
                    ));
                }
            },
        }
        argv.extend([
            "--interval".into(),
            format!("{interval}s").into(),
            "--max-seconds".into(),
            format!("{max_seconds}s").into(),
            "--max-ticks".into(),
            max_ticks.unwrap_or(100_000).to_string().into(),
        ]);
        let limit = Duration::from_secs(max_seconds + crate::fleet::tick_bound(&p) + 30);
        let ran = self.gp(&argv, limit).await?;
        Ok(lines_result(&ran, "ticks"))
    }

    fn tools() -> Vec<Tool> {
        let profile = json!({"type": "string", "description": "A served profile's name (see the gpupatrol://profiles resource)."});
        let profiles = json!({
            "type": "array", "items": {"type": "string"},
            "description": "Served profile names; leave out for every served profile."
        });
        let schema = |props: Value, required: &[&str]| -> Map<String, Value> {
            let Value::Object(m) =
                json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
            else {
                unreachable!("an object")
            };
            m
        };
        let ro = |t: &str| {
            ToolAnnotations::with_title(t.to_string())
                .read_only(true)
                .open_world(true)
        };
        // reads saved state or the profile only: connects nowhere
        let local = |t: &str| {
            ToolAnnotations::with_title(t.to_string())
                .read_only(true)
                .open_world(false)
        };
        let one = |name: &'static str, what: &'static str, a: ToolAnnotations| {
            Tool::new(name, what, schema(json!({"profile": profile}), &["profile"])).annotate(a)
        };
        vec![
            Tool::new(
                "tick",
                "One patrol tick per profile: one short SSH connection, one combined probe, the decision table, one line each (verdict, step, GPU, disk, what to do). Saves state and alerts as the profile says; acts (auto-resume) only where the profile opts in. Exit code: 0 ok, 1 warning, 2 critical, 3 unknown.",
                schema(json!({"profiles": profiles}), &[]),
            )
            .annotate(ToolAnnotations::with_title("Patrol tick").read_only(false).destructive(false).idempotent(false).open_world(true)),
            Tool::new(
                "status",
                "The fleet at a glance from saved state only (no connection, nothing written): one row per profile, worst first; `patrol stale` when a profile's last tick is too old.",
                schema(json!({"profiles": profiles}), &[]),
            )
            .annotate(local("Fleet status")),
            one(
                "triage",
                "Pull the traceback from the run's own log on the box (one connection) and classify it, with the fixed remediation.",
                ro("Failure triage"),
            ),
            Tool::new(
                "wait",
                format!(
                    "Sentinel wait, bounded: short ticks every interval_seconds (default {WAIT_INTERVAL_S}) until the marker exists or the text appears in the run's own log, a failure is detected, or max_seconds (default {WAIT_DEFAULT_S}, at most {WAIT_MAX_S}) or max_ticks is reached; then it returns with the last tick's line (`wait: gave-up` means call it again to go on). Without marker or pattern it waits for the profile's done marker. marker must be one the profile declares (job.done_marker, the chain's DONE or a chain stage's marker)."
                ),
                schema(
                    json!({
                        "profile": profile,
                        "marker": {"type": "string", "description": "A marker path the profile declares."},
                        "pattern": {"type": "string", "description": "Literal text to wait for in the run's own log (job.log)."},
                        "interval_seconds": {"type": "integer", "minimum": 1, "maximum": 3600},
                        "max_ticks": {"type": "integer", "minimum": 1, "maximum": 100_000},
                        "max_seconds": {"type": "integer", "minimum": 1, "maximum": WAIT_MAX_S}
                    }),
                    &["profile"],
                ),
            )
            .annotate(ro("Sentinel wait")),
            one(
                "doctor",
                "Preflight in one connection: reachable, host key, auth, tools on the box, paths, disk, clock.",
                ro("Preflight"),
            ),
            one(
                "handbook",
                "The recovery handbook (markdown) for this run: where things are, how to resume, the first command on reconnect. Local; no connection.",
                local("Recovery handbook"),
            ),
            one(
                "history",
                "The profile's tick history from saved state (no connection): step-rate and GPU-utilisation sparklines, the last ticks as rows, and every tick as JSON.",
                local("Tick history"),
            ),
            one(
                "chain_status",
                "Each stage of the on-box self-completion chain, by its sentinels on the box (one connection).",
                ro("Chain status"),
            ),
        ]
    }
}

/// SIGTERM to a child on drop (a cancelled call, a timeout): the child ends
/// as it does on a signal from a person, saving what it must.
struct Term(Option<u32>);

impl Drop for Term {
    fn drop(&mut self) {
        // directly, not through a `kill` on PATH (a slim image has none)
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// The markers a profile declares: what `wait` may be pointed at.
pub fn markers(p: &Profile) -> Vec<String> {
    let mut v: Vec<String> = p.job.done_marker.iter().cloned().collect();
    if let Some(c) = &p.chain {
        v.push(format!("{}/DONE", c.dir.trim_end_matches('/')));
        for s in &c.stages {
            if let crate::chain::Action::WaitMarker(m) = &s.action {
                v.push(m.clone());
            }
        }
    }
    v.dedup();
    v
}

fn only(args: &Map<String, Value>, allowed: &[&str]) -> std::result::Result<(), String> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown argument {k:?}; this tool takes: {}",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn need_str(args: &Map<String, Value>, key: &str, tool: &str) -> std::result::Result<String, String> {
    opt_str(args, key)?.ok_or_else(|| format!("{tool}: {key} is required (a served profile's name)"))
}

fn opt_str(args: &Map<String, Value>, key: &str) -> std::result::Result<Option<String>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key}: must be a string")),
    }
}

fn opt_u64(args: &Map<String, Value>, key: &str, min: u64, max: u64) -> std::result::Result<Option<u64>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!("{key}: must be a whole number from {min} to {max}")),
        },
    }
}

fn is_err(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
}

/// A resource's one text body.
fn contents(text: String, uri: &str, mime: &str) -> ReadResourceResponse {
    ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type(mime)]).into()
}

/// The child's own complaint (its stderr), for a tool error.
fn failure(ran: &Ran) -> String {
    let why = crate::text::plain_lines(ran.stderr.trim());
    match ran.code {
        Some(c) => format!("gpupatrol exited {c}: {why}"),
        None => format!("gpupatrol was stopped by a signal: {why}"),
    }
}

/// JSON Lines from the child as a result: the lines people read (each
/// object's `line`), then the objects. An exit code 0–3 is an answer (the
/// verdict's severity), not a tool error; no JSON at all is.
fn lines_result(ran: &Ran, key: &str) -> CallToolResult {
    let objs: Vec<Value> = ran
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    if objs.is_empty() {
        return CallToolResult::error(vec![ContentBlock::text(failure(ran))]);
    }
    let text = objs
        .iter()
        .map(|o| o.get("line").and_then(Value::as_str).unwrap_or_default().to_string())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mut structured = json!({"exit_code": ran.code, key: objs});
    if !ran.stderr.trim().is_empty() {
        structured["stderr"] = Value::String(crate::text::plain_lines(ran.stderr.trim()));
    }
    let mut r = CallToolResult::structured(structured);
    // structured() puts the JSON in a text block; the lines go first
    r.content.insert(0, ContentBlock::text(text));
    r
}

/// One JSON object from the child (triage, doctor, chain status).
fn one_result(ran: &Ran) -> CallToolResult {
    let obj = ran.stdout.lines().find_map(|l| serde_json::from_str::<Value>(l).ok());
    let Some(mut obj) = obj else {
        return CallToolResult::error(vec![ContentBlock::text(failure(ran))]);
    };
    if obj.get("exit_code").is_none() {
        obj["exit_code"] = json!(ran.code);
    }
    let line = obj.get("line").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut r = CallToolResult::structured(obj);
    r.content.insert(0, ContentBlock::text(line));
    r
}

/// What a profile watches, for the profiles resource.
fn describe(p: &Profile) -> Value {
    let alive = p.job.alive.as_ref().map(|a| match a {
        AliveCheck::Tmux(s) => format!("tmux:{s}"),
        AliveCheck::Pgrep(s) => format!("pgrep:{s}"),
        AliveCheck::Slurm(s) => format!("slurm:{s}"),
        AliveCheck::Pidfile(s) => format!("pidfile:{s}"),
    });
    json!({
        "name": p.name,
        "host": p.host,
        "port": p.port,
        "user": p.user,
        "transport": format!("{:?}", p.transport).to_lowercase(),
        "platform": format!("{:?}", p.platform).to_lowercase(),
        "alive": alive,
        "log": p.job.log,
        "done_marker": p.job.done_marker,
        "auto_resume": p.job.auto_resume,
        "artifacts": p.artifacts.iter().map(|a| &a.path).collect::<Vec<_>>(),
        "chain_stages": p.chain.as_ref().map(|c| c.stages.iter().map(|s| &s.name).collect::<Vec<_>>()),
        "markers": markers(p),
        "handbook": format!("gpupatrol://handbook/{}", p.name),
    })
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("gpupatrol", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "gpupatrol watches long training runs on rented GPU boxes. Call `tick` for one line per profile (is it alive, progressing, done, and if not what to do); `status` reads saved state without connecting; `wait` is a bounded sentinel (call it again when it says gave-up); `triage` classifies a crash. Tools name profiles from the gpupatrol://profiles resource, never hosts or paths.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(Self::tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        Self::tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        if Self::tools().iter().all(|t| t.name != request.name) {
            return Err(ErrorData::invalid_params(
                format!("no tool named {:?}", request.name),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        // a call the agent cancels drops its child run, which gets SIGTERM
        let r = tokio::select! {
            r = self.call(&request.name, &args) => r,
            _ = context.ct.cancelled() => Err(format!("{} was cancelled by the client", request.name)),
        };
        let r = match r {
            Ok(r) => r,
            Err(msg) => CallToolResult::error(vec![ContentBlock::text(msg)]),
        };
        Ok(r.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourcesResult, ErrorData> {
        let served = self.load();
        let mut v = vec![
            Resource::new("gpupatrol://profiles", "profiles")
                .with_description("The profiles this server serves: name, host, what is watched.")
                .with_mime_type("application/json"),
        ];
        for p in &served.profiles {
            v.push(
                Resource::new(
                    format!("gpupatrol://handbook/{}", p.name),
                    format!("handbook {}", p.name),
                )
                .with_description(format!("The recovery handbook for {} (markdown).", p.name))
                .with_mime_type("text/markdown"),
            );
        }
        Ok(ListResourcesResult::with_all_items(v))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        if uri == "gpupatrol://profiles" {
            let served = self.load();
            let body = json!({
                "profiles": served.profiles.iter().map(describe).collect::<Vec<_>>(),
                "not_served": served.errors,
            });
            let text = serde_json::to_string_pretty(&body).unwrap_or_default();
            return Ok(contents(text, uri, "application/json"));
        }
        if let Some(name) = uri.strip_prefix("gpupatrol://handbook/") {
            let p = self.find(name).map_err(|m| ErrorData::resource_not_found(m, None))?;
            let text = self
                .handbook_text(&p)
                .await
                .map_err(|m| ErrorData::internal_error(m, None))?;
            return Ok(contents(text, uri, "text/markdown"));
        }
        Err(ErrorData::resource_not_found(
            format!("no resource {uri:?}; there are gpupatrol://profiles and gpupatrol://handbook/NAME"),
            None,
        ))
    }
}
