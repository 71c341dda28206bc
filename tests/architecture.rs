//! The architecture's import rules, checked against the source tree: the
//! supervisor's core stays sans-IO, tmux and MQTT stay apart, the registry
//! and the views speak the domain's vocabulary (`src/model/`) rather than
//! MQTT's. The rules are data (`RULES`); the scanner reads `src/` with
//! `std::fs`, drops comments and literals, expands `use` groups and resolves
//! `super::`/`self::`, so `use crate::{mqtt::topic}` or `super::driver` are
//! caught as surely as `use crate::mqtt::topic`.

use std::fs;
use std::path::{Path, PathBuf};

/// A part of the tree and the modules it must not name.
struct Rule {
    /// Files (`.rs`) or folders (ending in `/`) under the crate root.
    parts: &'static [&'static str],
    /// Files or folders inside `parts` that the rule leaves out.
    except: &'static [&'static str],
    /// Module paths (`crate::…` or an external crate's) that are forbidden,
    /// with everything under them. A file may always name its own module.
    forbidden: &'static [&'static str],
    why: &'static str,
}

/// The modules that talk to the outside world (or load it).
const IO_ROOMS: &[&str] = &[
    "crate::mqtt",
    "crate::registry",
    "crate::tmux",
    "crate::proc",
    "crate::worker",
    "crate::supervisor::driver",
    "crate::config",
    "crate::broker",
    "crate::workspace",
    "crate::commands",
    "crate::fleet",
    "tokio",
    "nix",
    "rumqttc",
    "std::fs",
    "std::process",
    "std::net",
];

const RULES: &[Rule] = &[
    Rule {
        parts: &["src/supervisor/core.rs", "src/supervisor/core/"],
        except: &[],
        forbidden: IO_ROOMS,
        why: "the supervisor's core is sans-IO: its types come from crate::model, its effects go out as data",
    },
    Rule {
        parts: &["src/supervisor/queue.rs"],
        except: &[],
        forbidden: IO_ROOMS,
        why: "the queue (slots, dependencies, priorities) is pure like the core",
    },
    Rule {
        parts: &["src/model/", "src/model.rs"],
        except: &[],
        forbidden: IO_ROOMS,
        why: "the domain vocabulary does no I/O and depends on no room",
    },
    Rule {
        parts: &["src/tmux/"],
        except: &[],
        forbidden: &["crate::mqtt", "rumqttc"],
        why: "tmux and MQTT are separate rooms",
    },
    Rule {
        parts: &["src/mqtt/"],
        except: &[],
        forbidden: &["crate::tmux", "tmux_interface"],
        why: "tmux and MQTT are separate rooms",
    },
    Rule {
        parts: &["src/registry.rs"],
        except: &[],
        forbidden: &["crate::mqtt", "rumqttc"],
        why: "the registry stores the domain's types (crate::model), not MQTT's",
    },
    Rule {
        parts: &["src/supervisor/view.rs"],
        except: &[],
        forbidden: &["crate::mqtt", "crate::registry"],
        why: "the supervisor's view shows the domain's types (crate::model)",
    },
    Rule {
        parts: &["src/supervisor/policy.rs", "src/supervisor/clock.rs"],
        except: &[],
        forbidden: IO_ROOMS,
        why: "backoff and the clock's conversions are pure: the core calls them",
    },
    Rule {
        parts: &["src/"],
        except: &["src/main.rs", "src/commands/"],
        forbidden: &["crate::commands"],
        why: "commands are the top: only main.rs and commands/ call them; what two commands share lives below them",
    },
    Rule {
        parts: &["src/commands/"],
        except: &["src/commands/mod.rs"],
        forbidden: &["crate::commands"],
        why: "no command file imports another (mod.rs only routes): what two commands share lives below them",
    },
    Rule {
        parts: &["src/"],
        except: &["src/mqtt/", "src/broker/"],
        forbidden: &["rumqttc", "rumqttd"],
        why: "MQTT has one room: the client in src/mqtt/, the embedded broker in src/broker/",
    },
    Rule {
        parts: &["src/"],
        except: &["src/fleet/", "src/commands/", "src/mcp/", "src/main.rs"],
        forbidden: &["crate::fleet"],
        why: "the fleet sits on top of the supervisor, mqtt, tmux and the registry: nothing below it imports it (the MCP server, a front end like the commands, may)",
    },
    Rule {
        parts: &["src/"],
        except: &["src/mcp/", "src/commands/mcp.rs", "src/main.rs"],
        forbidden: &["crate::mcp", "rmcp"],
        why: "the MCP server is a front end like the commands, and the one room that speaks MCP: only `mcp` starts it",
    },
];

#[test]
fn no_part_imports_a_module_its_rule_forbids() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    for file in rust_files(&root.join("src")) {
        let relative = file
            .strip_prefix(root)
            .expect("under the crate root")
            .to_string_lossy()
            .replace('\\', "/");
        let source = fs::read_to_string(&file).expect("readable source file");
        broken.extend(breaches(&relative, &source));
    }
    assert!(
        broken.is_empty(),
        "forbidden imports:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn every_rule_names_files_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for rule in RULES {
        assert!(
            rule.parts.iter().any(|p| root.join(p).exists()),
            "no file matches {:?}: the rule would check nothing",
            rule.parts
        );
    }
}

#[test]
fn the_scanner_sees_every_way_of_naming_a_module() {
    let source = r#"
        // use crate::mqtt::ignored_in_a_comment;
        /* crate::tmux in a block comment */
        const S: &str = "crate::proc in a string";
        use crate::{model::JobId, mqtt::{event::EventKind, topic}};
        use super::driver::Driver;
        use self::inner::Thing;
        fn f<'a>(x: &'a str) -> char { let _ = crate::registry::now(); 'x' }
        use tokio::time;
    "#;
    let mut paths = paths_named(&code_only(source), &module_of("src/supervisor/core.rs"));
    paths.sort();
    assert_eq!(
        paths,
        [
            "crate::model::JobId",
            "crate::mqtt::event::EventKind",
            "crate::mqtt::topic",
            "crate::registry::now",
            "crate::supervisor::core::inner::Thing",
            "crate::supervisor::driver::Driver",
            "tokio::time",
        ]
    );
    assert!(is_under("crate::mqtt::topic", "crate::mqtt"));
    assert!(!is_under("crate::mqtt_extra", "crate::mqtt"));
    assert_eq!(module_of("src/tmux/mod.rs"), ["crate", "tmux"]);
}

#[test]
fn super_inside_an_inline_module_names_the_file_s_module() {
    let source = "mod tests {\n    use super::helper;\n    fn f() { if x { y() } }\n}\nuse super::other::Thing;\n";
    assert_eq!(
        paths_named(&code_only(source), &module_of("src/commands/publish.rs")),
        [
            "crate::commands::other::Thing",
            "crate::commands::publish::helper",
        ]
    );
}

/// Each rule, broken on purpose in a file it covers: the scan reports it,
/// and the same line in a file the rule leaves out passes.
#[test]
fn every_rule_catches_a_file_that_breaks_it() {
    let cases: &[(&str, &str, bool)] = &[
        (
            "src/supervisor/core.rs",
            "use crate::registry::Registry;",
            true,
        ),
        ("src/supervisor/queue.rs", "use tokio::time::sleep;", true),
        (
            "src/model/event.rs",
            "use crate::mqtt::client::Publisher;",
            true,
        ),
        ("src/tmux/mod.rs", "use rumqttc::v5::AsyncClient;", true),
        ("src/mqtt/client.rs", "use crate::tmux::Tmux;", true),
        ("src/registry.rs", "use crate::mqtt::sign::EventKey;", true),
        (
            "src/supervisor/view.rs",
            "use crate::registry::Record;",
            true,
        ),
        ("src/supervisor/policy.rs", "use std::fs::read;", true),
        (
            "src/supervisor/clock.rs",
            "use crate::registry::now_rfc3339;",
            true,
        ),
        ("src/ui/top/mod.rs", "use crate::commands::attach;", true),
        ("src/main.rs", "use crate::commands::dispatch;", false),
        ("src/commands/resume.rs", "use super::run::supervise;", true),
        (
            "src/commands/add.rs",
            "use crate::commands::run::new_record;",
            true,
        ),
        (
            "src/commands/mod.rs",
            "use crate::commands::run::run;",
            false,
        ),
        (
            "src/commands/publish.rs",
            "mod tests { use super::message_from_text; }",
            false,
        ),
        ("src/worker.rs", "use rumqttc::v5::mqttbytes::QoS;", true),
        (
            "src/fleet/runner.rs",
            "use rumqttc::v5::mqttbytes::v5::LastWill;",
            true,
        ),
        (
            "src/mqtt/connect.rs",
            "use rumqttc::v5::AsyncClient;",
            false,
        ),
        ("src/broker/embedded.rs", "use rumqttd::Broker;", false),
        (
            "src/config/mod.rs",
            "use crate::fleet::settings::FleetFile;",
            true,
        ),
        (
            "src/supervisor/driver.rs",
            "crate::fleet::joblog::save_pane(x);",
            true,
        ),
        ("src/commands/runner.rs", "use crate::fleet::runner;", false),
        ("src/mcp/start.rs", "use crate::fleet::submit;", false),
        ("src/supervisor/session.rs", "use crate::mcp::serve;", true),
        ("src/commands/run.rs", "use rmcp::ServiceExt;", true),
        ("src/commands/mcp.rs", "crate::mcp::serve();", false),
    ];
    for (file, line, broken) in cases {
        let found = breaches(file, line);
        assert_eq!(!found.is_empty(), *broken, "{file}: `{line}`: {found:?}");
    }
}

/// tmux clients send their whole environment to the server: every tmux
/// process is set up by `scrubbed` in `src/tmux/`, and nothing else in
/// `src/` starts tmux.
#[test]
fn every_tmux_process_is_set_up_by_the_scrubbing_helper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bypasses = Vec::new();
    for file in rust_files(&root.join("src")) {
        let relative = file
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let source = fs::read_to_string(&file).expect("readable source file");
        if !relative.starts_with("src/tmux/") {
            if source.contains("Command::new(\"tmux\")") || code_only(&source).contains("TmuxCli") {
                bypasses.push(format!("{relative}: runs tmux outside src/tmux/"));
            }
            continue;
        }
        bypasses.extend(
            unscrubbed_processes(&code_only(&source))
                .into_iter()
                .map(|at| {
                    format!("{relative}: a tmux process not set up by `scrubbed(...)`: `{at}`")
                }),
        );
    }
    assert!(bypasses.is_empty(), "{}", bypasses.join("\n"));
}

#[test]
fn the_tmux_check_sees_a_process_outside_the_helper() {
    let code = code_only(
        "fn a() { let c = scrubbed(std::process::Command::new(\"tmux\"), &s); }\n\
         fn b() { let c = scrubbed(TmuxCli::with_command(x).into_command(), &[]); }\n\
         fn c() { let c = TmuxCli::with_command(x)\n    .into_command().output(); }",
    );
    assert_eq!(unscrubbed_processes(&code), [".into_command()"]);
}

/// Where `code` creates a process (`Command::new(`, `.into_command()`)
/// other than inside the arguments of a `scrubbed(` call (or its own
/// definition).
fn unscrubbed_processes(code: &str) -> Vec<String> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found = Vec::new();
    for needle in ["Command::new(", ".into_command()"] {
        for (at, _) in code.match_indices(needle) {
            let before = &code[..at];
            let inside = before.rfind("scrubbed(").is_some_and(|open| {
                let mut depth = 0_i32;
                for c in before[open + "scrubbed".len()..].chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
                depth > 0
            });
            if !inside {
                found.push(needle.to_owned());
            }
        }
    }
    found
}

/// Functions stay small enough to read at once (STYLE.md): none in `src/`
/// is longer than this many lines, signature to closing brace.
const MAX_FUNCTION_LINES: usize = 80;

#[test]
fn no_function_in_src_is_over_80_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    for file in rust_files(&root.join("src")) {
        let relative = file
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let source = fs::read_to_string(&file).expect("readable source file");
        for (name, line, length) in function_lengths(&code_only(&source)) {
            if length > MAX_FUNCTION_LINES {
                long.push(format!("{relative}:{line}: fn {name} is {length} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them):\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn function_lengths_count_from_the_signature_to_the_closing_brace() {
    let code = code_only("fn a() {\n    if x { y(\"}\") }\n}\ntrait T { fn b(&self); }\npub fn c<T>(\n    t: T,\n) -> u8 { 1 }\n");
    assert_eq!(
        function_lengths(&code),
        [("a".to_owned(), 1, 3), ("c".to_owned(), 5, 3)]
    );
}

/// Each function with a body: its name, first line and length in lines.
fn function_lengths(code: &str) -> Vec<(String, usize, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let line_at = |i: usize| chars[..i].iter().filter(|c| **c == '\n').count() + 1;
    let mut found = Vec::new();
    let mut i = 0;
    while i + 3 < chars.len() {
        let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !(starts_word && chars[i..].starts_with(&['f', 'n', ' '])) {
            i += 1;
            continue;
        }
        let (name, after) = ident_at(&chars, skip_space(&chars, i + 3));
        let Some(body) = (after..chars.len()).find(|&k| chars[k] == '{' || chars[k] == ';') else {
            break;
        };
        if name.is_empty() || chars[body] == ';' {
            i = after;
            continue;
        }
        let mut depth = 0_i32;
        let mut end = body;
        for (k, c) in chars.iter().enumerate().skip(body) {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = k;
                break;
            }
        }
        let first = line_at(i);
        found.push((name, first, line_at(end) - first + 1));
        i = after;
    }
    found
}

/// What one source file names that a rule forbids it, one line each.
fn breaches(relative: &str, source: &str) -> Vec<String> {
    let module = module_of(relative);
    let own = module.join("::");
    let paths = paths_named(&code_only(source), &module);
    let mut broken = Vec::new();
    for rule in RULES.iter().filter(|r| applies(r, relative)) {
        for path in paths.iter().filter(|p| !is_under(p, &own)) {
            if let Some(bad) = rule.forbidden.iter().find(|f| is_under(path, f)) {
                broken.push(format!(
                    "{relative}: `{path}` (under `{bad}`): {}",
                    rule.why
                ));
            }
        }
    }
    broken
}

fn applies(rule: &Rule, relative: &str) -> bool {
    let matches = |part: &&str| {
        if part.ends_with('/') {
            relative.starts_with(part)
        } else {
            relative == *part
        }
    };
    rule.parts.iter().any(matches) && !rule.except.iter().any(matches)
}

fn is_under(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("readable source folder")
        .map(|e| e.expect("readable entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `src/supervisor/core.rs` → `crate::supervisor::core`; `mod.rs` and
/// `main.rs` name their folder.
fn module_of(relative: &str) -> Vec<String> {
    let inner = relative.trim_start_matches("src/").trim_end_matches(".rs");
    let mut module = vec!["crate".to_owned()];
    module.extend(
        inner
            .split('/')
            .filter(|s| !matches!(*s, "mod" | "main" | "lib"))
            .map(str::to_owned),
    );
    module
}

/// The source with comments, string and char literals blanked out, so that
/// only code can name a module.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if at(&chars, i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(&chars, i + 1) == '*' => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && at(&chars, i + 1) == '/') {
                    i += 1;
                }
                i += 2;
            }
            'r' if (at(&chars, i + 1) == '"' || at(&chars, i + 1) == '#')
                && !chars
                    .get(i.wrapping_sub(1))
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_') =>
            {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                i += 2 + hashes;
                while i < chars.len() && !chars[i..].iter().collect::<String>().starts_with(&close)
                {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' if at(&chars, i + 1) == '\\' || at(&chars, i + 2) == '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("' '");
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Every module path the code names from `crate`, `super`, `self` or an
/// external crate a rule mentions, resolved to an absolute path
/// (`crate::…`), with `use` groups expanded.
fn paths_named(code: &str, module: &[String]) -> Vec<String> {
    let externs: Vec<&str> = RULES
        .iter()
        .flat_map(|r| r.forbidden.iter())
        .filter(|f| !f.starts_with("crate::"))
        .map(|f| f.split("::").next().unwrap_or(f))
        .chain(["std"])
        .collect();
    let chars: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    // Inline modules (`mod tests { use super::… }`) open at a brace depth:
    // `super` inside one names the file's module, not its parent.
    let mut inline = InlineModules::default();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0
            || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
        if starts_word && (chars[i].is_alphabetic() || chars[i] == '_') {
            let (first, after) = ident_at(&chars, i);
            let wanted = matches!(first.as_str(), "crate" | "super" | "self")
                || externs.contains(&first.as_str());
            if wanted && chars[after..].starts_with(&[':', ':']) {
                let (found, end) = path_at(&chars, i);
                let here = inline.module(module);
                for path in found {
                    paths.push(resolve(&path, &here));
                }
                i = end;
                continue;
            }
            if first == "mod" {
                inline.declared(&chars, after);
            }
            i = after;
            continue;
        }
        inline.brace(chars[i]);
        i += 1;
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The inline modules open at the scanner's position, with the brace depth
/// each opened at.
#[derive(Default)]
struct InlineModules {
    depth: usize,
    open: Vec<(String, usize)>,
    /// A `mod name` whose `{` comes next.
    pending: Option<String>,
}

impl InlineModules {
    /// After the word `mod`: remembers the name when a body follows.
    fn declared(&mut self, chars: &[char], after_mod: usize) {
        let (name, end) = ident_at(chars, skip_space(chars, after_mod));
        if !name.is_empty() && chars.get(skip_space(chars, end)) == Some(&'{') {
            self.pending = Some(name);
        }
    }

    fn brace(&mut self, c: char) {
        match c {
            '{' => {
                self.depth += 1;
                if let Some(name) = self.pending.take() {
                    self.open.push((name, self.depth));
                }
            }
            '}' => {
                if self.open.last().is_some_and(|(_, d)| *d == self.depth) {
                    self.open.pop();
                }
                self.depth = self.depth.saturating_sub(1);
            }
            _ => {}
        }
    }

    /// The module the scanner is in: the file's, plus the open inline ones.
    fn module(&self, file: &[String]) -> Vec<String> {
        let mut module = file.to_vec();
        module.extend(self.open.iter().map(|(name, _)| name.clone()));
        module
    }
}

fn at(chars: &[char], i: usize) -> char {
    chars.get(i).copied().unwrap_or('\0')
}

fn ident_at(chars: &[char], start: usize) -> (String, usize) {
    let ident: String = chars[start..]
        .iter()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .collect();
    let end = start + ident.len();
    (ident, end)
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The path(s) starting at `start`: `a::b::c`, or `a::{b, c::{d, e}}`
/// expanded; returns them and the index after the path.
fn path_at(chars: &[char], start: usize) -> (Vec<String>, usize) {
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        i = skip_space(chars, i);
        if chars.get(i) == Some(&'{') {
            let mut paths = Vec::new();
            i += 1;
            loop {
                i = skip_space(chars, i);
                match chars.get(i) {
                    None => return (paths, i),
                    Some('}') => return (paths, i + 1),
                    Some(',') => i += 1,
                    Some('*') => i += 1,
                    Some(_) => {
                        let (inner, end) = path_at(chars, i);
                        let prefix = segments.join("::");
                        paths.extend(inner.into_iter().map(|p| match p.as_str() {
                            "self" => prefix.clone(),
                            _ => format!("{prefix}::{p}"),
                        }));
                        i = skip_alias(chars, end);
                    }
                }
            }
        }
        let (ident, end) = ident_at(chars, i);
        if ident.is_empty() {
            return (vec![segments.join("::")], i);
        }
        segments.push(ident);
        i = end;
        if chars[i..].starts_with(&[':', ':']) {
            i += 2;
        } else {
            return (vec![segments.join("::")], i);
        }
    }
}

/// Skips ` as name` after a path in a `use` group.
fn skip_alias(chars: &[char], i: usize) -> usize {
    let j = skip_space(chars, i);
    let (word, end) = ident_at(chars, j);
    if word == "as" {
        ident_at(chars, skip_space(chars, end)).1
    } else {
        i
    }
}

fn resolve(path: &str, module: &[String]) -> String {
    let mut segments: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String> = match segments.first() {
        Some(&"super") | Some(&"self") => module.to_vec(),
        _ => return path.to_owned(),
    };
    while let Some(&first) = segments.first() {
        match first {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        segments.remove(0);
    }
    base.extend(segments.iter().map(|s| (*s).to_owned()));
    base.join("::")
}
