//! `gpupatrol tick`: one tick per profile, concurrently (at most `--jobs`
//! connections in flight); one line each, as each box finishes; the worst
//! exit code wins.

use crate::cli::TickArgs;
use crate::error::Result;
use crate::exit_codes;
use crate::output;

pub async fn run(args: &TickArgs, state_dir: Option<&std::path::Path>) -> Result<i32> {
    let (profiles, bad) = super::load_profiles(&args.profiles);
    unique_names(&profiles)?;
    let store = super::store(state_dir)?;
    let slots = tokio::sync::Semaphore::new(args.jobs as usize);
    let done = futures_join_all(profiles.iter().map(|p| async {
        let t = crate::tick::run_paced(p, &store, &slots, args.every).await;
        print(&t.report, p, args.json, &args.exports);
        t.report
    }))
    .await;
    if let Some(path) = &args.exports.prom_file {
        write_prom(path, &done.iter().collect::<Vec<_>>());
    }
    let codes = done.iter().map(|r| r.exit_code);
    let mut code = if bad > 0 { exit_codes::UNKNOWN } else { exit_codes::OK };
    for c in codes {
        code = code.max(c);
    }
    Ok(code)
}

/// Run futures concurrently and collect results in order (no extra crate).
pub async fn futures_join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// Names key the state files: two profiles may not share one.
pub fn unique_names(profiles: &[crate::profile::Profile]) -> Result<()> {
    unique(profiles.iter().map(|p| p.name.as_str()))
}

/// The same, for names alone (`status` reads no more of a profile).
pub fn unique<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(crate::error::Error::Usage(format!(
                "two profiles are named {n:?}; names key the state files and must differ"
            )));
        }
    }
    Ok(())
}

/// A report as the line (with perfdata when asked) or as JSON.
pub fn print(r: &crate::report::Report, p: &crate::profile::Profile, json: bool, ex: &crate::cli::Exports) {
    if ex.perfdata && !json {
        output::line(&crate::fleet::line_with_perfdata(r, &p.thresholds));
    } else {
        output::report(r, json);
    }
}

/// Write the `.prom` file; a failure is said on stderr (the ticks stand).
pub fn write_prom(path: &std::path::Path, reports: &[&crate::report::Report]) {
    if let Err(e) = crate::fleet::write_prom(path, reports) {
        eprintln!("gpupatrol: --prom-file {}: {e}", path.display());
    }
}
