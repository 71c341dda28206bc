//! TOML error rendering: `file:line:col`, the offending line with a caret,
//! and "a similar key exists" for unknown keys (cargo's habits).

use crate::error::{config_error, Failure};
use std::path::Path;

/// Turns a TOML parse/deserialise error into a configuration failure naming
/// the file, the line and column, and a did-you-mean for unknown keys.
pub fn toml_failure(path: &Path, source: &str, error: &toml::de::Error) -> Failure {
    let message = error.message().trim();
    let location = match error.span() {
        Some(span) => {
            let (line, col) = line_col(source, span.start);
            let snippet = caret_snippet(source, line, col, span.len());
            format!("{}:{line}:{col}: {message}\n{snippet}", path.display())
        }
        None => format!("{}: {message}", path.display()),
    };
    let failure = config_error(location);
    match suggestion(message) {
        Some(hint) => failure.help(hint),
        None => failure.help(format!(
            "fix {} (every key is documented in config.toml.example)",
            path.display()
        )),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn caret_snippet(source: &str, line: usize, col: usize, len: usize) -> String {
    let text = source.lines().nth(line - 1).unwrap_or("");
    let width = len.clamp(1, text.chars().count().saturating_sub(col - 1).max(1));
    let gutter = line.to_string().len();
    format!(
        "{:gutter$} |\n{line} | {text}\n{:gutter$} | {}{}",
        "",
        "",
        " ".repeat(col - 1),
        "^".repeat(width)
    )
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and the same
/// for enum variants), the nearest valid name.
fn suggestion(message: &str) -> Option<String> {
    let unknown_kind = if message.starts_with("unknown field") {
        "key"
    } else if message.starts_with("unknown variant") {
        "value"
    } else {
        return None;
    };
    let mut names = message.split('`').skip(1).step_by(2);
    let unknown = names.next()?;
    let expected: Vec<&str> = names.collect();
    match nearest(unknown, &expected) {
        Some(best) => Some(format!("a similar {unknown_kind} exists: `{best}`")),
        None if !expected.is_empty() => Some(format!(
            "valid {unknown_kind}s here: {}",
            expected.join(", ")
        )),
        None => None,
    }
}

/// The candidate closest to `unknown`, if it is plausibly a typo of it.
pub fn nearest<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (strsim::jaro_winkler(unknown, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Broker {
        host: Option<String>,
        port: Option<u16>,
    }

    fn failure_for(source: &str) -> Failure {
        let error = toml::from_str::<Broker>(source).expect_err("must fail");
        toml_failure(&PathBuf::from("conf.toml"), source, &error)
    }

    #[test]
    fn unknown_key_names_place_and_similar_key() {
        let failure = failure_for("host = \"a\"\nhots = \"b\"\n");
        assert!(
            failure
                .message
                .starts_with("conf.toml:2:1: unknown field `hots`"),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains("2 | hots = \"b\"\n  | ^^^^"),
            "{}",
            failure.message
        );
        assert_eq!(
            failure.help.as_deref(),
            Some("a similar key exists: `host`")
        );
    }

    #[test]
    fn out_of_range_port_points_at_the_value() {
        let failure = failure_for("port = 99999\n");
        assert!(
            failure.message.starts_with("conf.toml:1:8:"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let failure = failure_for("host = \n");
        assert!(
            failure.message.starts_with("conf.toml:1:"),
            "{}",
            failure.message
        );
    }
}
