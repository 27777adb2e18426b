//! Every method an error message tells the user to call exists: the backticked `snake_case`
//! names and `Type::method` paths in the string literals of `src/` are checked against the
//! crate's own `fn` definitions, so a rename cannot leave a message naming the old method.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// Backticked names in string literals that are not methods (JSON members, claims, headers).
const NOT_METHODS: &[&str] = &["jwks_uri", "error_description", "client_id", "key_ops"];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn every_method_an_error_message_names_exists() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
    let mut checked = 0;
    let mut missing = Vec::new();
    for (file, text) in &files {
        for line in text.lines() {
            let code = line.trim_start();
            // String literals only: not comments or doc comments.
            if code.starts_with("//") || !code.contains('"') {
                continue;
            }
            for quoted in code.split('`').skip(1).step_by(2) {
                let name = quoted.trim_end_matches("(..)").trim_end_matches("()");
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
                if !valid || !(name.contains('_') || name.contains("::")) {
                    continue;
                }
                let method = name.rsplit("::").next().unwrap();
                if NOT_METHODS.contains(&method)
                    || method.chars().next().is_some_and(char::is_uppercase)
                {
                    continue;
                }
                checked += 1;
                if !all.contains(&format!("fn {method}("))
                    && !all.contains(&format!("fn {method}<"))
                {
                    missing.push(format!("{file}: `{name}`"));
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} names found: the scan is broken"
    );
    assert!(
        missing.is_empty(),
        "messages name methods that do not exist: {missing:#?}"
    );
}
