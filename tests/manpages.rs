//! `man --dir DIR` writes a page for every command, and no page (nor the
//! one `man` prints) refers to a page that was not written.

mod common;

use common::*;

/// Every `name(1)` reference in a roff page (hyphens are escaped as `\-`).
fn references(page: &str) -> Vec<String> {
    let page = page.replace("\\-", "-");
    page.match_indices("(1)")
        .filter_map(|(end, _)| {
            let start = page[..end]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(0, |i| i + 1);
            let name = &page[start..end];
            name.starts_with("tmux-delegate").then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn every_page_a_page_refers_to_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("man");
    let out_arg = out_dir.display().to_string();
    let out = run(td(dir.path(), &[]).args(["man", "--dir", &out_arg]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for command in [
        "run",
        "register",
        "publish",
        "watch",
        "status",
        "logs",
        "attach",
        "kill",
        "retry",
        "resume",
        "init",
        "agents",
        "broker",
        "broker-serve",
        "broker-setup",
        "doctor",
        "completions",
        "man",
    ] {
        let page = out_dir.join(format!("tmux-delegate-{command}.1"));
        assert!(page.is_file(), "no page {}", page.display());
    }
    let printed = run(td(dir.path(), &[]).args(["man"]));
    assert!(printed.status.success());
    let mut pages = vec![("stdout".to_owned(), text(&printed.stdout))];
    for entry in std::fs::read_dir(&out_dir).expect("ls") {
        let path = entry.expect("entry").path();
        pages.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).expect("page"),
        ));
    }
    let mut checked = 0;
    for (source, page) in &pages {
        for name in references(page) {
            checked += 1;
            assert!(
                out_dir.join(format!("{name}.1")).is_file(),
                "{source} refers to {name}(1), which was not written"
            );
        }
    }
    assert!(checked > 10, "found only {checked} references");
}
