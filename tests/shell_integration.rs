//! Completions sourced in the real shells (bash, fish, zsh) and man pages
//! rendered by the real groff and man.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_gpupatrol");

fn gp(args: &[&str]) -> Run {
    let mut c = Command::new(BIN);
    c.args(args);
    run(c, Duration::from_secs(20))
}

/// A directory like a user's: two profiles, a stray file, a folder.
fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["a100.yaml", "h100.yml", "notes.txt", "a100.yaml.bak"] {
        std::fs::write(d.path().join(f), "x").unwrap();
    }
    std::fs::create_dir(d.path().join("fleet")).unwrap();
    std::fs::write(d.path().join("fleet/box1.yaml"), "x").unwrap();
    d
}

fn script(shell: &str, dir: &Path) -> std::path::PathBuf {
    let r = gp(&["completions", shell]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = dir.join(format!("gpupatrol.{shell}"));
    std::fs::write(&p, r.stdout).unwrap();
    p
}

fn shell(mut c: Command, dir: &Path) -> Run {
    c.current_dir(dir).env(
        "PATH",
        format!(
            "{}:{}",
            Path::new(BIN).parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    run(c, Duration::from_secs(20))
}

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn bash_completes_subcommands_and_profile_files() {
    if !have("bash") && peer_missing("bash") {
        return;
    }
    let d = workdir();
    let s = script("bash", d.path());
    let complete = |words: &str, cword: usize| -> Vec<String> {
        let mut c = Command::new("bash");
        c.args(["--norc", "--noprofile", "-c"]).arg(format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; _gpupatrol gpupatrol \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$((COMP_CWORD-1))]}}\" 2>/dev/null; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            q(&s.to_string_lossy())
        ));
        let r = shell(c, d.path());
        assert_eq!(r.code, 0, "{}", r.stderr);
        lines(&r.stdout)
    };
    let subs = complete("gpupatrol ''", 1);
    for want in ["tick", "status", "mcp", "completions", "man", "wait", "triage"] {
        assert!(subs.contains(&want.to_string()), "{want} in {subs:?}");
    }
    assert_eq!(complete("gpupatrol sta", 1), ["status"]);
    assert_eq!(
        complete("gpupatrol tick -p ''", 3),
        ["a100.yaml", "fleet", "h100.yml"],
        "profiles and folders, not notes.txt or a .bak"
    );
    assert_eq!(complete("gpupatrol status --profile fleet/", 3), ["fleet/box1.yaml"]);
    assert_eq!(
        complete("gpupatrol mcp --profiles ''", 3),
        ["a100.yaml", "fleet", "h100.yml"]
    );
    let opts = complete("gpupatrol wait --", 2);
    assert!(opts.contains(&"--max-seconds".to_string()), "{opts:?}");
    // other file options still complete every file
    let any = complete("gpupatrol triage --log ''", 3);
    assert!(any.contains(&"notes.txt".to_string()), "{any:?}");
}

#[test]
fn fish_completes_subcommands_and_profile_files() {
    if !have("fish") && peer_missing("fish") {
        return;
    }
    let d = workdir();
    let s = script("fish", d.path());
    let complete = |line: &str| -> Vec<String> {
        let mut c = Command::new("fish");
        c.args(["--no-config", "-c"])
            .arg(format!("source {}; complete -C {}", q(&s.to_string_lossy()), q(line)));
        let r = shell(c, d.path());
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.is_empty(), "{}", r.stderr);
        lines(&r.stdout)
    };
    let subs = complete("gpupatrol ");
    for want in ["tick", "status", "mcp", "completions", "man"] {
        assert!(subs.contains(&want.to_string()), "{want} in {subs:?}");
    }
    assert_eq!(complete("gpupatrol tick -p "), ["a100.yaml", "fleet/", "h100.yml"]);
    assert_eq!(complete("gpupatrol check --profile fleet/"), ["fleet/box1.yaml"]);
    assert_eq!(
        complete("gpupatrol tick --profile="),
        ["--profile=a100.yaml", "--profile=fleet/", "--profile=h100.yml"]
    );
}

/// Type `line` and TAB TAB into an interactive `shell` on a real pty (after
/// `setup`); what the terminal showed.
fn typed(shell: &[&str], setup: &[String], line: &str, dir: &Path) -> String {
    let Some(py) = python() else {
        panic!("python3 drives the pty (CI installs it)");
    };
    let setup_file = dir.join(".pty-setup");
    std::fs::write(&setup_file, setup.join("\n")).unwrap();
    let mut c = Command::new(py);
    c.arg(fixtures().join("pty_complete.py"))
        .arg(&setup_file)
        .arg(line)
        .arg("--")
        .args(shell);
    let r = self::shell(c, dir);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn zsh_completes_profile_files_in_a_real_terminal() {
    if !have("zsh") && peer_missing("zsh") {
        return;
    }
    let d = workdir();
    let fdir = d.path().join(".zfunc");
    std::fs::create_dir(&fdir).unwrap();
    let s = script("zsh", d.path());
    std::fs::rename(&s, fdir.join("_gpupatrol")).unwrap();
    let setup = vec![
        format!("fpath=({} $fpath)", q(&fdir.to_string_lossy())),
        "autoload -Uz compinit".into(),
        "compinit -u -D".into(),
        "PS1='> '".into(),
    ];
    let out = typed(&["zsh", "-f", "-i"], &setup, "gpupatrol tick -p ", d.path());
    assert!(
        !out.contains("invalid argument") && !out.contains("command not found"),
        "{out}"
    );
    assert!(
        out.contains("a100.yaml") && out.contains("fleet/") && out.contains("h100.yml"),
        "{out}"
    );
    assert!(!out.contains("notes.txt") && !out.contains(".bak"), "{out}");
    let out = typed(&["zsh", "-f", "-i"], &setup, "gpupatrol status -p fl", d.path());
    assert!(out.contains("fleet/") && out.contains("box1.yaml"), "{out}");
    let out = typed(&["zsh", "-f", "-i"], &setup, "gpupatrol tick --j", d.path());
    assert!(out.contains("--jobs"), "options complete too: {out}");
}

#[test]
fn bash_completes_into_folders_in_a_real_terminal() {
    if !have("bash") && peer_missing("bash") {
        return;
    }
    let d = workdir();
    let s = script("bash", d.path());
    let setup = vec![format!("source {}", q(&s.to_string_lossy())), "PS1='> '".into()];
    for line in ["gpupatrol mcp --profiles fl", "gpupatrol tick -p fl"] {
        let out = typed(&["bash", "--norc", "--noprofile", "-i"], &setup, line, d.path());
        assert!(
            out.contains("fleet/"),
            "{line}: a folder completes with its slash: {out}"
        );
    }
}

#[test]
fn every_shell_gets_a_script_and_a_bad_one_is_refused() {
    for sh in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = gp(&["completions", sh]);
        assert_eq!(r.code, 0, "{sh}: {}", r.stderr);
        for sub in ["tick", "status", "mcp"] {
            assert!(r.stdout.contains(sub), "{sh} script names {sub}");
        }
    }
    let r = gp(&["completions", "tcsh"]);
    assert_eq!(r.code, 3, "a usage error is unknown (3)");
    assert!(r.stderr.contains("possible values"), "{}", r.stderr);
}

#[test]
fn man_pages_render_in_groff_and_man_without_warnings() {
    if (!have("groff") && peer_missing("groff")) || (!have("man") && peer_missing("man")) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("man1");
    let r = gp(&["man", "-o", &out.to_string_lossy()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let mut pages: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "gpupatrol.1",
        "gpupatrol-tick.1",
        "gpupatrol-wait.1",
        "gpupatrol-chain-install.1",
        "gpupatrol-mcp.1",
        "gpupatrol-man.1",
    ] {
        assert!(pages.contains(&want.to_string()), "{want} in {pages:?}");
    }
    for p in &pages {
        let f = out.join(p);
        let mut c = Command::new("groff");
        c.args(["-man", "-Tutf8", "-ww", "-z"]).arg(&f);
        let g = run(c, Duration::from_secs(20));
        assert_eq!((g.code, g.stderr.as_str()), (0, ""), "groff warns on {p}");
        let mut c = Command::new("man");
        c.args(["--warnings", "-l"])
            .arg(&f)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0");
        let m = run(c, Duration::from_secs(20));
        assert_eq!((m.code, m.stderr.as_str()), (0, ""), "man warns on {p}");
        assert!(!m.stdout.is_empty(), "{p} renders");
    }
    let mut c = Command::new("man");
    c.args(["-l"]).arg(out.join("gpupatrol-wait.1")).env("MANWIDTH", "80");
    let m = run(c, Duration::from_secs(20));
    assert!(m.stdout.contains("--max-seconds"), "{}", m.stdout);
    // `gpupatrol man` alone is the main page, byte for byte
    let main = gp(&["man"]);
    assert_eq!(main.stdout, std::fs::read_to_string(out.join("gpupatrol.1")).unwrap());
    assert!(main.stdout.contains("mcp"), "the main page lists the subcommands");
}
