//! Quoting values for the box's POSIX shell. Every profile value reaches the
//! box through [`quote`]: single quotes, with `'` spelled `'\''`. Inside single
//! quotes a POSIX shell interprets nothing — not `$`, backticks, `|`, `\` or
//! newlines — so any string arrives byte for byte.

/// Quote `s` as one POSIX shell word.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
        if ch == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(ch);
        }
    }
    out.push('\'');
    out
}

/// `NAME='value'; export NAME` — one exported assignment line.
pub fn export(name: &str, value: &str) -> String {
    debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    format!("{name}={}; export {name}\n", quote(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::{Command, Stdio};

    fn echo_through_sh(s: &str) -> Vec<u8> {
        let script = format!("printf '%s' {}", quote(s));
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn nasty_strings_arrive_verbatim() {
        for s in [
            "",
            "plain",
            "with space",
            "it's",
            "'",
            "''",
            "$(touch /tmp/pwned)",
            "`id`",
            "a|b|c",
            "line1\nline2",
            "back\\slash",
            "tab\there",
            "\"double\"",
            "ünïcödé ✓",
            "*?[glob]",
            "-n",
        ] {
            assert_eq!(echo_through_sh(s), s.as_bytes(), "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_string_survives_the_shell(s in "[^\u{0}]{0,40}") {
            prop_assert_eq!(echo_through_sh(&s), s.as_bytes());
        }
    }
}
