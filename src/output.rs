//! Writing to stdout. A closed pipe (`gpupatrol tick ... | head -1`) ends the
//! process quietly instead of panicking.

use std::io::Write;

use crate::report::Report;

/// Print one line; exit quietly if stdout is gone.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{s}").and_then(|_| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// A report as the human line or as one JSON object.
pub fn report(r: &Report, json: bool) {
    if json {
        line(&serde_json::to_string(r).expect("reports serialize"));
    } else {
        line(&r.line);
    }
}
