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

/// fish: complete paths, keep profile files and directories (fish 3.x's
/// own `__fish_complete_suffix` takes one suffix before 3.7).
const FISH_PROFILES: &str = r#" -r -f -a "(__gpupatrol_profiles)""#;

/// The helper it calls: the token without `--opt=`, `~/` as the home.
const FISH_HELPER: &str = r#"
function __gpupatrol_profiles
    set -l tok (commandline -ct | string replace -r -- '^-[^=]*=' '')
    set -l home ''
    if string match -q -- '~/*' $tok
        set tok (string replace -- '~/' "$HOME/" $tok)
        set home 1
    end
    for c in (__fish_complete_path $tok)
        if string match -qr -- '^[^\t]*(?:\.ya?ml|/)(?:\t.*)?$' $c
            if test -n "$home"
                string replace -- "$HOME/" '~/' $c
            else
                printf '%s\n' $c
            end
        end
    end
end
"#;

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
                        // folders, then profile files that are not folders
                        r#"COMPREPLY=($(compgen -d -- "${cur}"; { compgen -f -X '!*.yaml' -- "${cur}"; compgen -f -X '!*.yml' -- "${cur}"; } | while IFS= read -r f; do [ -d "$f" ] || printf '%s\n' "$f"; done))"#,
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
                line.replace(":_files' \\", r#":_files -g "*.(yaml|yml)"' \"#)
            }
            Shell::Fish if t.contains(" -l profile ") || t.contains(" -l profiles ") => {
                line.replace(" -r -F", FISH_PROFILES)
            }
            _ => line.to_string(),
        };
        out.push_str(&l);
        out.push('\n');
    }
    if shell == Shell::Fish {
        out.push_str(FISH_HELPER);
    }
    out
}
