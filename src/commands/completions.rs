//! `gpupatrol completions SHELL`: a completion script (clap_complete), with
//! `-p/--profile` narrowed to profile files (`*.yaml`, `*.yml`) and
//! directories where the shell can say so (bash, zsh, fish).

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;
use crate::exit_codes;
use crate::output;

pub fn run(args: &CompletionsArgs) -> Result<i32> {
    output::line(script(args.shell).trim_end());
    Ok(exit_codes::OK)
}

/// The script as clap_complete writes it, then the profile options narrowed.
pub fn script(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "gpupatrol", &mut buf);
    let s = String::from_utf8(buf).expect("clap_complete writes UTF-8");
    narrow(shell, &s)
}

/// fish: complete paths, keep profile files and directories.
const FISH_PROFILES: &str =
    r#" -r -f -a "(string match -r -- '^[^\t]*(?:\.ya?ml|/)(?:\t.*)?\$' (__fish_complete_path (commandline -ct)))""#;

/// The options that take profiles.
const PROFILE_OPTS: [&str; 3] = ["-p", "--profile", "--profiles"];

fn narrow(shell: Shell, s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4096);
    // bash: inside a `--profile)` case, the file list is replaced
    let mut in_case = false;
    for line in s.lines() {
        let t = line.trim();
        let l = match shell {
            Shell::Bash => {
                if PROFILE_OPTS.iter().any(|o| t == format!("{o})")) {
                    in_case = true;
                } else if t == ";;" {
                    in_case = false;
                }
                if in_case && t == r#"COMPREPLY=($(compgen -f "${cur}"))"# {
                    line.replace(
                        t,
                        r#"COMPREPLY=($(compgen -d -- "${cur}"; compgen -f -X '!*.yaml' -- "${cur}"; compgen -f -X '!*.yml' -- "${cur}"))"#,
                    )
                } else {
                    line.to_string()
                }
            }
            Shell::Zsh
                if ["'*-p+[", "'*--profile=[", "'-p+[", "'--profile=[", "'*--profiles=["]
                    .iter()
                    .any(|o| t.starts_with(o)) =>
            {
                line.replace(":_files' \\", r#":_files -g "*.(yaml|yml)"' \\"#)
            }
            Shell::Fish if t.contains(" -l profile ") || t.contains(" -l profiles ") => {
                // files ending .yaml/.yml and directories (fish 3.x's own
                // __fish_complete_suffix takes one suffix before 3.7)
                line.replace(" -r -F", FISH_PROFILES)
            }
            _ => line.to_string(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    out
}
