//! Text that came from the box or a log, made safe to print. A training log
//! (or a compromised box) can hold terminal escape sequences: clear-screen,
//! title changes, OSC 52 (writes the user's clipboard), OSC 8 links. Every
//! piece of box or log text goes through [`plain`] before it reaches a
//! terminal, a report line, an alert's environment or the handbook; JSON
//! keeps its own escaping.

/// `s` without C0/C1 control characters (tab becomes a space) and without
/// the bytes of escape sequences: an ESC and what its sequence carries.
pub fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // CSI and OSC as single C1 characters
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            // bidi overrides can make a line read differently from what it is
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars>) {
    match chars.peek().copied() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
        }
        // OSC, DCS, SOS, PM, APC: a string up to BEL or ST
        Some(']' | 'P' | 'X' | '^' | '_') => {
            chars.next();
            skip_string(chars);
        }
        Some(_) => {
            // a two-byte sequence (ESC c, ESC 7, ...)
            chars.next();
        }
        None => {}
    }
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars>) {
    // parameters (0-9:;<=>?) and intermediates (space to /), then one final
    // byte in @..~; anything else ends it there (only what came before goes)
    while let Some(&c) = chars.peek() {
        if ('\u{30}'..='\u{3f}').contains(&c) || ('\u{20}'..='\u{2f}').contains(&c) {
            chars.next();
        } else {
            if ('@'..='~').contains(&c) {
                chars.next();
            }
            break;
        }
    }
}

/// An OSC/DCS/SOS/PM/APC string up to BEL or ST. Without a terminator in
/// the rest of the text it is no sequence a terminal would complete: only
/// its introducer goes (a stray U+009D in mojibake must not eat the line).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars>) {
    let mut ahead = chars.clone();
    let mut n = 0usize;
    let mut terminated = false;
    while let Some(c) = ahead.next() {
        n += 1;
        match c {
            '\u{7}' | '\u{9c}' => {
                terminated = true;
                break;
            }
            '\u{1b}' if ahead.peek() == Some(&'\\') => {
                n += 1;
                terminated = true;
                break;
            }
            _ => {}
        }
    }
    if terminated {
        for _ in 0..n {
            chars.next();
        }
    }
}

/// [`plain`] line by line: the line breaks stay.
pub fn plain_lines(s: &str) -> String {
    s.lines().map(plain).collect::<Vec<_>>().join("\n")
}

/// `s` as the body of a markdown fenced block: no line can close the fence.
pub fn fenced(s: &str) -> String {
    plain(s).replace("```", "ʼʼʼ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_never_survive() {
        let hostile = "Epoch 3\u{1b}[2J\u{1b}[H\u{1b}]0;pwned\u{7}\u{1b}]52;c;Y3VybCB4fHNo\u{1b}\\\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\ loss\u{9b}31m 0.1\u{1b}c\r\u{8}";
        let p = plain(hostile);
        assert_eq!(p, "Epoch 3link loss 0.1");
        assert!(!p.chars().any(|c| c.is_control()));
    }

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(plain("step 5 — ünïcode ✓\tok"), "step 5 — ünïcode ✓ ok");
        assert_eq!(plain("abc\u{202e}txt.exe"), "abctxt.exe");
        assert_eq!(fenced("a ``` b"), "a ʼʼʼ b");
    }

    #[test]
    fn an_unterminated_string_or_a_stray_c1_drops_itself_only() {
        // mojibake of a closing quote: "â\u{80}\u{9d}" before the real message
        let t = plain("â\u{80}\u{9d} RuntimeError: CUDA out of memory");
        assert_eq!(t, "â RuntimeError: CUDA out of memory");
        assert_eq!(plain("x\u{1b}]0;no end here"), "x0;no end here");
        assert_eq!(plain("a\u{1b}Pstill text"), "astill text");
        // a CSI cut short by text keeps the text
        assert_eq!(plain("a\u{1b}[12\u{e9}t"), "a\u{e9}t");
        assert_eq!(plain("\u{1b}[31mred\u{1b}[0m"), "red");
    }
}
