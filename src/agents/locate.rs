//! Path templates of `[agents.NAME.conversation]`: `~` and `$VAR` /
//! `${VAR}` from the agent's environment (a template naming an unset
//! variable is skipped: the next one applies), the placeholders, and `*`
//! / `?` within a path segment, matched against the files there.

use std::path::{Path, PathBuf};

/// How many directory entries one search looks at, at most.
const SEARCH_MAX: usize = 20_000;
/// How much of a candidate transcript is read to find the session id.
const HEAD_MAX: usize = 4096;

/// `template` with `~` and its variables taken from `env`; `None` when one
/// of them is unset or empty (or `~` with no HOME).
pub fn expand_env(template: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    if let Some(after) = rest.strip_prefix('~') {
        if after.is_empty() || after.starts_with('/') {
            out.push_str(&var("HOME")?);
            rest = after;
        }
    }
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let (name, len) = match tail.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}')?;
                (&braced[..end], end + 2)
            }
            None => {
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                (&tail[..end], end)
            }
        };
        if name.is_empty() {
            out.push('$');
            rest = tail;
            continue;
        }
        out.push_str(&var(name)?);
        rest = &tail[len..];
    }
    out.push_str(rest);
    Some(out)
}

/// Whether a path has wildcards.
pub fn has_wildcard(path: &str) -> bool {
    path.contains(['*', '?'])
}

/// `*` (any run of characters) and `?` (one character) against a name.
fn matches(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|skip| matches(rest, &name[skip..])),
        Some(('?', rest)) => !name.is_empty() && matches(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && matches(rest, &name[1..]),
    }
}

/// The files `pattern` (absolute, or relative to `base`) matches, in name
/// order.
pub fn glob(pattern: &str, base: &Path) -> Vec<PathBuf> {
    let full = base.join(pattern);
    let mut found = vec![PathBuf::from("/")];
    let mut budget = SEARCH_MAX;
    for part in full.components().skip(1) {
        let part = part.as_os_str().to_string_lossy();
        if !has_wildcard(&part) {
            found = found.into_iter().map(|dir| dir.join(&*part)).collect();
            continue;
        }
        let wanted: Vec<char> = part.chars().collect();
        let mut next = Vec::new();
        for dir in found {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten().take(budget) {
                budget = budget.saturating_sub(1);
                let name: Vec<char> = entry.file_name().to_string_lossy().chars().collect();
                if matches(&wanted, &name) {
                    next.push(entry.path());
                }
            }
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found.sort();
    found
}

/// The transcript `pattern` names for conversation `session`: the file
/// itself when it has no wildcard; else the first match in name order
/// whose name, or first line, holds the id (Codex names its rollout by the
/// id; Gemini CLI puts it in the first line, and a resume in a later
/// minute adds a second, shorter file of the same id after the first).
pub fn find_transcript(pattern: &str, base: &Path, session: &str) -> Option<PathBuf> {
    if !has_wildcard(pattern) {
        let path = base.join(pattern);
        return path.is_file().then_some(path);
    }
    glob(pattern, base).into_iter().find(|path| {
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(session))
            || first_line_holds(path, session)
    })
}

fn first_line_holds(path: &Path, needle: &str) -> bool {
    use std::io::Read;
    let mut head = vec![0; HEAD_MAX];
    let Ok(read) = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let head = String::from_utf8_lossy(&head[..read]);
    head.lines()
        .next()
        .is_some_and(|line| line.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "CODEX_HOME" => Some("/srv/codex".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_and_an_unset_one_skips_the_template() {
        assert_eq!(
            expand_env("~/.codex/s", &env).as_deref(),
            Some("/home/u/.codex/s")
        );
        assert_eq!(
            expand_env("$CODEX_HOME/s/*", &env).as_deref(),
            Some("/srv/codex/s/*")
        );
        assert_eq!(
            expand_env("${CODEX_HOME}x", &env).as_deref(),
            Some("/srv/codexx")
        );
        assert_eq!(expand_env("$GEMINI_CLI_HOME/.gemini", &env), None);
        assert_eq!(expand_env("$EMPTY/x", &env), None);
        assert_eq!(expand_env("${UNCLOSED", &env), None);
        assert_eq!(expand_env("a$/b~c", &env).as_deref(), Some("a$/b~c"));
        assert_eq!(expand_env("~user/x", &env).as_deref(), Some("~user/x"));
    }

    #[test]
    fn a_wildcard_transcript_is_the_first_file_that_names_the_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chats = dir.path().join("tmp/work/chats");
        std::fs::create_dir_all(&chats).expect("mkdir");
        let id = "3f0c5a8e-1111-4222-8333-444455556666";
        let write = |name: &str, first: &str| {
            std::fs::write(chats.join(name), format!("{first}\n{{}}\n")).expect("write")
        };
        write(
            "session-2026-12-04T01-28-aaaaaaaa.jsonl",
            "{\"sessionId\":\"other\"}",
        );
        write(
            "session-2026-12-04T01-29-3f0c5a8e.jsonl",
            &format!("{{\"sessionId\":\"{id}\"}}"),
        );
        write(
            "session-2026-12-04T01-30-3f0c5a8e.jsonl",
            &format!("{{\"sessionId\":\"{id}\"}}"),
        );
        let pattern = format!("{}/tmp/*/chats/session-*.jsonl", dir.path().display());
        assert_eq!(glob(&pattern, Path::new("/")).len(), 3);
        assert_eq!(
            find_transcript(&pattern, Path::new("/"), id),
            Some(chats.join("session-2026-12-04T01-29-3f0c5a8e.jsonl"))
        );
        assert_eq!(find_transcript(&pattern, Path::new("/"), "nobody"), None);
        // By name (Codex's rollouts), and a plain path.
        let rollout = format!("{}/tmp/*/chats/*-aaaaaaaa.jsonl", dir.path().display());
        assert!(find_transcript(&rollout, Path::new("/"), "aaaaaaaa").is_some());
        let plain = chats.join("session-2026-12-04T01-28-aaaaaaaa.jsonl");
        assert_eq!(
            find_transcript(&plain.display().to_string(), Path::new("/"), "x"),
            Some(plain)
        );
        assert_eq!(
            find_transcript("/nonexistent/*/x", Path::new("/"), id),
            None
        );
        assert!(matches(&['?', '*'], &['a']));
        assert!(!matches(&['?'], &[]));
    }
}
