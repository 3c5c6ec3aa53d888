//! Rules for text that people and applications give us and that we show again (client names,
//! URIs, user names, emails): no control characters, no bidirectional formatting characters.
//!
//! A CR or LF in a client name forges lines in `adieu client list` and in logs; a TAB forges
//! columns; NUL truncates in some tools; and the bidirectional controls (U+202A–U+202E,
//! U+2066–U+2069, and the marks U+200E, U+200F, U+061C) reorder what a reader sees, so
//! `evil\u{202E}moc.elpmaxe` reads as something else. URIs must be checked as typed: the URL
//! parser silently drops TAB, CR and LF.

/// The first character of `s` that may not be stored, if any.
pub fn forbidden_char(s: &str) -> Option<char> {
    s.chars().find(|&c| c.is_control() || is_bidi_control(c))
}

/// Whether `c` is a bidirectional formatting character (Unicode `Bidi_Control`).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// An error message naming the field and the character (as an escape, never the raw character).
pub fn check(field: &str, s: &str) -> Result<(), String> {
    match forbidden_char(s) {
        Some(c) => {
            Err(format!("{field} must not contain control or bidirectional characters (found U+{:04X})", c as u32))
        }
        None => Ok(()),
    }
}

/// A DNS host name compared by its meaning: lower-case, without the trailing dot of a fully
/// qualified name (`Example.TEST.` and `example.test` are one host).
pub fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused() {
        for s in ["a\rb", "a\nb", "a\tb", "a\0b", "a\u{7f}b", "a\u{85}b", "a\u{1b}[31mb"] {
            assert!(forbidden_char(s).is_some(), "{s:?}");
        }
    }

    #[test]
    fn bidirectional_controls_are_refused() {
        for c in ['\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}', '\u{200F}', '\u{200E}', '\u{061C}'] {
            assert_eq!(forbidden_char(&format!("app{c}x")), Some(c));
        }
    }

    #[test]
    fn ordinary_text_in_any_script_passes() {
        for s in ["App A", "Zoë's café", "Приложение", "アプリ", "تطبيق", "emoji 🙂"] {
            assert_eq!(forbidden_char(s), None, "{s}");
        }
    }

    #[test]
    fn the_message_escapes_the_character() {
        let e = check("client_name", "x\u{202E}y").unwrap_err();
        assert!(e.contains("U+202E") && !e.contains('\u{202E}'), "{e}");
    }

    #[test]
    fn hosts_are_compared_without_trailing_dot_and_case() {
        assert_eq!(normalize_host("LocalHost."), "localhost");
        assert_eq!(normalize_host("id.example.test."), "id.example.test");
        assert_eq!(normalize_host("id.example.test"), "id.example.test");
    }
}
