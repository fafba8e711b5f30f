//! The documentation users read cannot drift from the code.

use std::path::Path;

#[test]
fn decision_table_doc_lists_every_row_in_order() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/decision-table.md")).unwrap();
    let mut at = 0;
    for (name, _) in gpupatrol::decide::TABLE {
        let pos = doc[at..]
            .find(name)
            .unwrap_or_else(|| panic!("docs/decision-table.md lacks row {name:?} (or out of order)"));
        at += pos + name.len();
    }
    let rows = doc
        .lines()
        .filter(|l| l.starts_with("| ") && l.split('|').nth(1).is_some_and(|c| c.trim().parse::<u32>().is_ok()))
        .count();
    assert_eq!(
        rows,
        gpupatrol::decide::TABLE.len(),
        "the doc's numbered rows and the code's table differ in length"
    );
}

#[test]
fn every_verdict_remediation_is_documented() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/decision-table.md")).unwrap();
    // CRASHED's remediation is its triage class's (the table below it)
    for v in gpupatrol::verdict::Verdict::ALL
        .into_iter()
        .filter(|v| *v != gpupatrol::verdict::Verdict::Crashed)
    {
        assert!(doc.contains(v.remediation()), "{v}: remediation not in the doc");
    }
}

#[test]
fn example_profiles_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            gpupatrol::profile::load(&p).unwrap_or_else(|e| panic!("{}", e.render()));
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn help_text_snapshot() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpupatrol"))
        .arg("--help")
        .env_remove("GPUPATROL_STATE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
}
