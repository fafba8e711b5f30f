//! Built-in push: a JSON webhook, an ntfy topic, a Slack-compatible incoming
//! webhook, and the heartbeat ping of a dead-man's switch (healthchecks.io,
//! Uptime Kuma push monitors). One small blocking HTTP client (ureq, rustls
//! on ring: the crypto backend the SSH side already uses), run off the async
//! runtime, one thread per endpoint, all at once.
//!
//! Every delivery is bounded: `alert.http_timeout` covers the connection, the
//! answer and the retries (a refused connection, a timeout, a 5xx or a 429 is
//! tried again after 250 ms, 500 ms, 1 s … while time is left; a 4xx or a
//! certificate error is not). No redirect is followed.
//!
//! URLs carry secrets (a Slack webhook's path *is* its token; an ntfy topic
//! is a shared secret): a URL is never printed. What a person sees is
//! `scheme://host[:port]` of the URL as written, `${VAR}` unexpanded, and
//! every message from the HTTP stack is scrubbed of the URL, its path, its
//! query, its user info and every `${VAR}` value before it is shown.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::report::Report;
use crate::verdict::Severity;

/// Where an endpoint's URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The URL as written, `${VAR}` expanded from the environment at send time.
    Url(String),
    /// A file holding the URL (its first line), read at send time.
    File(PathBuf),
}

/// One HTTP endpoint of the profile's `alert:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The channel: `webhook`, `ntfy`, `slack`, `heartbeat`.
    pub channel: &'static str,
    pub source: Source,
}

/// A URL cut where it matters here: `scheme://[user@]host[:port]TAIL`.
struct Parts<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    /// host[:port], `[v6]:port`
    host: &'a str,
    /// path, query and fragment, as written
    tail: &'a str,
}

fn parts(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Some(Parts {
        scheme,
        user,
        host,
        tail,
    })
}

/// `host[:port]` → (host, port); `[v6]:port` → (v6, port).
fn host_port(hp: &str) -> Result<(&str, Option<&str>), &'static str> {
    match hp.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or("has an unclosed [ in its host")?;
            match after {
                "" => Ok((h, None)),
                a => Ok((h, Some(a.strip_prefix(':').ok_or("has text after its [host]")?))),
            }
        }
        None => Ok(match hp.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }),
    }
}

/// Check a URL as written in a profile: http(s), a host, `${VAR}` well formed.
pub fn check_template(t: &str) -> Result<(), String> {
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has spaces or control characters (write %20)".into());
    }
    vars(t)?;
    if t.contains('#') {
        // never sent: a /fail or a status put after it would be lost
        return Err("has a #fragment, which is never sent (leave it out)".into());
    }
    let p = parts(t)
        .filter(|p| p.scheme == "https" || p.scheme == "http")
        .ok_or("must start with https:// (or http://)")?;
    let (host, port) = host_port(p.host)?;
    if host.is_empty() {
        return Err("names no host".into());
    }
    // a port, when there is one and it is written out, is a number that fits
    if let Some(p) = port
        && !p.contains("${")
        && !p.parse::<u16>().is_ok_and(|n| n > 0)
    {
        return Err("has a port that is not a number from 1 to 65535".into());
    }
    Ok(())
}

/// Is the URL's host this machine (127.0.0.0/8, ::1, localhost)? Plain http
/// to it sends nothing over a network.
pub fn is_loopback(url: &str) -> bool {
    let Some((host, _)) = parts(url).and_then(|p| host_port(p.host).ok()) else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

/// The `${VAR}` names in a URL template, in order.
pub fn vars(t: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or("has an unclosed ${")?;
        let name = &after[..end];
        let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(format!("has ${{{name}}}, which is not an environment variable name"));
        }
        out.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// A URL ready to use, and the secrets inside it (never shown).
struct Resolved {
    url: String,
    secrets: Vec<String>,
}

impl Endpoint {
    /// What a person may see of it: `webhook https://hooks.example.com`.
    pub fn shown(&self) -> String {
        match &self.source {
            Source::Url(t) => format!("{} {}", self.channel, origin(t)),
            Source::File(p) => format!("{} (URL in {})", self.channel, p.display()),
        }
    }

    /// Variables the URL needs that this environment lacks (for `check`).
    pub fn missing_vars(&self) -> Vec<String> {
        match &self.source {
            Source::Url(t) => vars(t)
                .unwrap_or_default()
                .into_iter()
                .filter(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
                .collect(),
            Source::File(_) => vec![],
        }
    }

    fn resolve(&self) -> Result<Resolved, String> {
        let (url, mut secrets) = match &self.source {
            Source::Url(t) => {
                let (url, secrets) = expand(t)?;
                // what the variables put in must still make a URL (never shown: it holds them)
                check_template(&url).map_err(|e| format!("with its variables expanded, the URL {e}"))?;
                (url, secrets)
            }
            Source::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                let url = text.lines().next().unwrap_or("").trim().to_string();
                check_template(&url).map_err(|e| format!("the URL in {}: {e}", p.display()))?;
                if url.contains("${") {
                    return Err(format!("the URL in {} must be literal (no ${{VAR}})", p.display()));
                }
                (url, vec![])
            }
        };
        secrets.extend(url_secrets(&url));
        secrets.push(url.clone());
        // the longest first, so a part of a secret is never left showing
        secrets.retain(|s| s.len() >= 4);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Resolved { url, secrets })
    }
}

/// `${VAR}` expanded; the values are secrets.
fn expand(t: &str) -> Result<(String, Vec<String>), String> {
    let mut out = String::new();
    let mut secrets = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or("an unclosed ${")?;
        let name = &after[..end];
        let v = std::env::var(name).unwrap_or_default();
        if v.is_empty() {
            return Err(format!("${{{name}}} is not set in this environment"));
        }
        out.push_str(&v);
        secrets.push(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secrets))
}

/// `scheme://host[:port]` of a URL (user info, path and query dropped).
pub fn origin(url: &str) -> String {
    match parts(url) {
        Some(p) => format!("{}://{}", p.scheme, p.host),
        None => "?://?".into(),
    }
}

/// The parts of a URL that may be a token: user info, path, query and its values.
fn url_secrets(url: &str) -> Vec<String> {
    let Some(p) = parts(url) else { return vec![] };
    let mut out: Vec<String> = Vec::new();
    if let Some(user) = p.user {
        out.push(user.into());
        out.extend(user.split(':').map(str::to_string));
    }
    if !p.tail.is_empty() && p.tail != "/" {
        out.push(p.tail.into());
        out.push(p.tail.split(['?', '#']).next().unwrap_or("").into());
        if let Some((_, q)) = p.tail.split_once('?') {
            out.push(q.into());
            out.extend(
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(_, v)| v.to_string()),
            );
        }
    }
    out
}

/// Replace every secret in a message by `…`.
fn scrub(msg: &str, secrets: &[String]) -> String {
    let mut m = msg.to_string();
    for s in secrets {
        m = m.replace(s.as_str(), "…");
    }
    m
}

/// One HTTP request to make.
struct Request {
    get: bool,
    url: String,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// Why an attempt failed, and whether another may work.
struct Failed {
    why: String,
    retry: bool,
}

fn attempt(req: &Request, budget: Duration, deadline: Duration) -> Result<(), Failed> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(budget))
        .timeout_connect(Some(budget.min(Duration::from_secs(5))))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("gpupatrol/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let (url, auth) = split_userinfo(&req.url);
    let mut headers = req.headers.clone();
    headers.extend(auth.map(|a| ("Authorization", a)));
    fn with<B>(mut b: ureq::RequestBuilder<B>, headers: &[(&'static str, String)]) -> ureq::RequestBuilder<B> {
        for (k, v) in headers {
            b = b.header(*k, v);
        }
        b
    }
    let res = if req.get {
        with(agent.get(&url), &headers).call()
    } else {
        with(agent.post(&url), &headers)
            .header("Content-Type", req.content_type)
            .send(&req.body[..])
    };
    match res {
        Ok(r) => {
            let code = r.status().as_u16();
            match code {
                200..=299 => Ok(()),
                300..=399 => Err(Failed {
                    why: format!("answered {code} (a redirect; give the final URL)"),
                    retry: false,
                }),
                408 | 429 | 500..=599 => Err(Failed {
                    why: format!("answered {code}"),
                    retry: true,
                }),
                _ => Err(Failed {
                    why: format!("answered {code}"),
                    retry: false,
                }),
            }
        }
        Err(e) => Err(describe(e, deadline)),
    }
}

/// Our words for the HTTP stack's errors (never its Display alone: some of
/// its messages carry the URL).
fn describe(e: ureq::Error, deadline: Duration) -> Failed {
    use ureq::Error as E;
    let (why, retry) = match &e {
        E::Timeout(_) => (format!("no answer within {}", crate::duration::human(deadline)), true),
        E::HostNotFound => ("host not found".to_string(), true),
        E::ConnectionFailed => ("connection failed".to_string(), true),
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => ("connection refused".to_string(), true),
        E::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            (format!("no answer within {}", crate::duration::human(deadline)), true)
        }
        E::Io(io) => (format!("{io}"), true),
        E::Tls(_) | E::Rustls(_) => (format!("TLS: {e}"), false),
        E::BadUri(_) | E::Http(_) => ("not a usable URL".to_string(), false),
        _ => (e.to_string(), true),
    };
    Failed { why, retry }
}

/// `https://user:pw@host/…` → the URL without the user info, and a Basic
/// `Authorization` header for it (ntfy's access tokens and passwords).
fn split_userinfo(url: &str) -> (String, Option<String>) {
    match parts(url) {
        Some(Parts {
            scheme,
            user: Some(user),
            host,
            tail,
        }) => {
            let user = percent_decode(user);
            let auth = format!("Basic {}", data_encoding::BASE64.encode(user.as_bytes()));
            (format!("{scheme}://{host}{tail}"), Some(auth))
        }
        _ => (url.to_string(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Send one request within `deadline`, retrying what may work on a retry.
fn deliver(req: &Request, deadline: Duration, secrets: &[String]) -> Result<(), String> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(250);
    let mut tries = 0;
    loop {
        tries += 1;
        let left = deadline.saturating_sub(start.elapsed());
        let f = match attempt(req, left.max(Duration::from_millis(100)), deadline) {
            Ok(()) => return Ok(()),
            Err(f) => f,
        };
        let left = deadline.saturating_sub(start.elapsed());
        if !f.retry || left < pause + Duration::from_millis(100) {
            let why = if tries > 1 {
                format!("{} (after {tries} tries)", f.why)
            } else {
                f.why
            };
            return Err(scrub(&why, secrets));
        }
        std::thread::sleep(pause);
        pause *= 2;
    }
}

/// Deliver to one endpoint off the runtime; `Err` is the problem to report,
/// already naming the endpoint as it may be shown.
async fn send(ep: &Endpoint, deadline: Duration, build: impl FnOnce(String) -> Request) -> Result<(), String> {
    let shown = ep.shown();
    let r = match ep.resolve() {
        Ok(r) => r,
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    let req = build(r.url.clone());
    let secrets = r.secrets;
    let job = tokio::task::spawn_blocking(move || deliver(&req, deadline, &secrets));
    // the client's own deadline ends the thread; this one ends our wait
    match tokio::time::timeout(deadline + Duration::from_secs(2), job).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(why))) => Err(format!("{shown}: {why}")),
        Ok(Err(e)) => Err(format!("{shown}: {e}")),
        Err(_) => Err(format!(
            "{shown}: no answer within {}",
            crate::duration::human(deadline)
        )),
    }
}

/// ntfy's priority (5 max for critical, 4 high for warning and unknown, 3
/// default) and tag (an emoji name) for a severity.
fn ntfy_level(s: Severity) -> (&'static str, &'static str) {
    match s {
        Severity::Critical => ("5", "rotating_light"),
        Severity::Unknown => ("4", "question"),
        Severity::Warning => ("4", "warning"),
        Severity::Ok => ("3", "white_check_mark"),
    }
}

/// A header value: printable ASCII only (a profile name is, but be sure).
fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

/// Deliver a report to one notification endpoint.
pub async fn notify(ep: &Endpoint, r: &Report, message: &str, deadline: Duration) -> Result<(), String> {
    const JSON: &str = "application/json";
    let (content_type, headers, body) = match ep.channel {
        "webhook" => (JSON, vec![], serde_json::to_vec(r).expect("reports serialize")),
        "slack" => (
            JSON,
            vec![],
            serde_json::to_vec(&serde_json::json!({ "text": message })).expect("json"),
        ),
        _ => {
            let (priority, tag) = ntfy_level(r.severity);
            let title = header_text(&format!("gpupatrol {} {}", r.profile, r.verdict));
            let headers = vec![("Title", title), ("Priority", priority.into()), ("Tags", tag.into())];
            ("text/plain; charset=utf-8", headers, message.as_bytes().to_vec())
        }
    };
    send(ep, deadline, move |url| Request {
        get: false,
        url,
        content_type,
        headers,
        body,
    })
    .await
}

/// Is this an Uptime Kuma push URL (`…/api/push/TOKEN`)?
fn is_kuma(url: &str) -> bool {
    url.contains("/api/push/")
}

/// The URL to ping for a tick of this severity: healthchecks' `URL/fail`
/// (before any query) on critical or unknown; Uptime Kuma's
/// `?status=up|down&msg=VERDICT`.
pub fn ping_url(url: &str, severity: Severity, verdict: &str) -> String {
    let bad = matches!(severity, Severity::Critical | Severity::Unknown);
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    if is_kuma(url) {
        let mut kept: Vec<String> = query
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("status=") && !kv.starts_with("msg="))
            .map(str::to_string)
            .collect();
        kept.insert(0, format!("status={}", if bad { "down" } else { "up" }));
        kept.insert(1, format!("msg={verdict}"));
        return format!("{base}?{}", kept.join("&"));
    }
    if !bad {
        return url.to_string();
    }
    let base = base.trim_end_matches('/');
    match query {
        Some(q) => format!("{base}/fail?{q}"),
        None => format!("{base}/fail"),
    }
}

/// Ping the heartbeat endpoint after a completed tick (POST of the line, so
/// the service's log shows it; a GET for Uptime Kuma).
pub async fn heartbeat(ep: &Endpoint, r: &Report, deadline: Duration) -> Result<(), String> {
    let (severity, verdict) = (r.severity, r.verdict.as_str());
    let body = r.line.as_bytes().to_vec();
    send(ep, deadline, move |url| {
        let get = is_kuma(&url);
        Request {
            get,
            url: ping_url(&url, severity, verdict),
            content_type: "text/plain; charset=utf-8",
            headers: vec![],
            body,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_checked_and_origins_hide_the_token() {
        assert!(check_template("https://hooks.slack.com/services/T0/B0/${SLACK}").is_ok());
        assert!(check_template("ftp://x/y").is_err());
        assert!(check_template("https:///path").is_err());
        assert!(check_template("https://x/${SLACK").is_err());
        assert!(check_template("https://x/${1A}").is_err());
        assert!(check_template("https://x/a b").is_err());
        assert!(check_template("http://127.0.0.1:99999/x").is_err());
        assert!(check_template("http://127.0.0.1:abc/x").is_err());
        assert!(check_template("http://[::1]:8080/x").is_ok());
        assert!(check_template("http://127.0.0.1:${PORT}/x").is_ok());
        assert!(check_template("http://[::1/x").is_err());
        assert!(check_template("http://:80/x").is_err());
        assert!(check_template("http://127.0.0.1:0/x").is_err());
        assert!(check_template("https://hc-ping.com/uuid#frag").is_err());
        assert!(
            is_loopback("http://LOCALHOST.:8/")
                && is_loopback("http://[::ffff:127.0.0.1]:8/")
                && is_loopback("http://[0:0:0:0:0:0:0:1]/")
        );
        assert!(
            is_loopback("http://127.0.0.9:8/x") && is_loopback("http://localhost/x") && is_loopback("http://[::1]:80/")
        );
        assert!(!is_loopback("http://127.evil.example/x") && !is_loopback("http://localhost.evil.example/"));
        assert_eq!(
            origin("https://u:pw@ntfy.example.com:8443/topic?auth=tk"),
            "https://ntfy.example.com:8443"
        );
        assert_eq!(
            origin("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com"
        );
    }

    #[test]
    fn scrubbing_removes_every_part_that_may_be_a_token() {
        let url = "https://bob:s3cret@hc.example.com/ping/0d3b-uuid?auth=tk_abcdef";
        let mut secrets = url_secrets(url);
        secrets.push(url.into());
        secrets.retain(|s| s.len() >= 4);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let msg = format!("error at {url} and /ping/0d3b-uuid and tk_abcdef and s3cret (a ping)");
        let clean = scrub(&msg, &secrets);
        for s in ["s3cret", "0d3b-uuid", "tk_abcdef", "bob:"] {
            assert!(!clean.contains(s), "{clean}");
        }
        assert!(clean.ends_with("(a ping)"), "our own words stay: {clean}");
    }

    #[test]
    fn ping_urls_follow_healthchecks_and_uptime_kuma() {
        let hc = "https://hc-ping.com/5f1c";
        assert_eq!(ping_url(hc, Severity::Ok, "RUNNING"), hc);
        assert_eq!(ping_url(hc, Severity::Warning, "RUNNING"), hc);
        assert_eq!(
            ping_url(hc, Severity::Critical, "DIED"),
            "https://hc-ping.com/5f1c/fail"
        );
        assert_eq!(
            ping_url("https://hc-ping.com/5f1c/?rid=1", Severity::Unknown, "UNREACHABLE"),
            "https://hc-ping.com/5f1c/fail?rid=1"
        );
        assert_eq!(
            ping_url(
                "https://kuma.example/api/push/Ab1?status=up&msg=OK&ping=",
                Severity::Critical,
                "DIED"
            ),
            "https://kuma.example/api/push/Ab1?status=down&msg=DIED&ping="
        );
    }

    #[test]
    fn user_info_becomes_basic_auth() {
        let (u, a) = split_userinfo("https://alice:p%40ss@ntfy.example/t");
        assert_eq!(u, "https://ntfy.example/t");
        assert_eq!(
            a.unwrap(),
            format!("Basic {}", data_encoding::BASE64.encode(b"alice:p@ss"))
        );
        assert_eq!(split_userinfo("https://ntfy.example/t").1, None);
    }
}
