//! The local transport: `sh -c COMMAND` on this machine with the script on
//! stdin, killed at the deadline. Used by `demo` and `transport: local`.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Failure, Limits, Output};

pub async fn exec(command: &str, stdin: &[u8], limits: Limits) -> Result<Output, Failure> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // its own process group: a probe stuck at its deadline is killed
        // whole (a `tail` blocked on a FIFO, a wedged nvidia-smi), not only
        // the shell whose children would live on
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::Unreachable(format!("cannot start sh: {e}")))?;
    let mut input = child.stdin.take().expect("piped stdin");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let script = stdin.to_vec();
    let max = limits.max_stdout;
    let work = async move {
        let feed = async move {
            // A probe that exits early closes its stdin; that is not our error.
            let _ = input.write_all(&script).await;
            drop(input);
        };
        let read_out = async {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 64 * 1024];
            loop {
                let n = out.read(&mut chunk).await.map_err(|e| Failure::Probe(e.to_string()))?;
                if n == 0 {
                    return Ok(buf);
                }
                if buf.len() + n > max {
                    return Err(Failure::Probe(format!("output exceeded {max} bytes")));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        let read_err = async {
            let mut buf = Vec::new();
            let _ = (&mut err).take(64 * 1024).read_to_end(&mut buf).await;
            buf
        };
        let ((), stdout, stderr) = tokio::join!(feed, read_out, read_err);
        Ok::<_, Failure>((stdout?, stderr))
    };
    match tokio::time::timeout(limits.deadline, work).await {
        Ok(Ok((stdout, stderr))) => {
            let status = child.wait().await.ok().and_then(|s| s.code()).map(|c| c as u32);
            Ok(Output {
                stdout,
                stderr,
                exit_status: status,
                connections: 0,
            })
        }
        Ok(Err(e)) => {
            kill_group(&mut child).await;
            Err(e)
        }
        Err(_) => {
            kill_group(&mut child).await;
            Err(Failure::Probe(format!(
                "did not finish within {}",
                crate::duration::human(limits.deadline)
            )))
        }
    }
}

/// KILL the child's whole process group (its pid is the group's id).
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let _ = child.kill().await;
}
