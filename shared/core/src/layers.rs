//! The order core's modules stand in, bottom up: a module uses only
//! modules before it in [`ORDER`]. The source tree has a folder per layer
//! (`util/`, `policy/`, `sign/`, `flow/`, `run/`, `outcome/`, `inbound/`,
//! `subscription/`), in this order. Its test reads the sources and fails on
//! an import that breaks the order (which is how an import cycle would
//! start). `docs/ARCHITECTURE.md` ("Modules") describes each. Compiled
//! for tests only: it is a check, not code.

/// Core's modules, bottom up, by layer (the folder each is in).
pub(crate) const ORDER: &[&str] = &[
    // util/
    "text",
    "scrub",
    "duration",
    "headers",
    "events",
    "tries",
    // policy/
    "status",
    "ssrf",
    "retry",
    "limit",
    "destination",
    // src/ (files of their own; `template/` a folder: `context`, then
    // `mod.rs`, `template`)
    "context",
    "template",
    "source",
    "error",
    // sign/
    "signature",
    "keyring",
    // flow/ (`flow/mod.rs` is `flow`; `source` above is its file too)
    "flow",
    "validate",
    // flow/validate/: the rules by part of the flow, what a template sees
    "trigger_rules",
    "step_rules",
    "scope",
    "keys",
    "schema",
    // run/ (`run/mod.rs` is `run`)
    "request",
    "trigger",
    "delivery",
    "run",
    "attempt",
    "dry",
    // outcome/
    "commit",
    "engine",
    "ports",
    "stats",
    "requests",
    // inbound/ (`inbound/mod.rs` is `inbound`)
    "auth",
    "inbound",
    // subscription/ (one module of several files)
    "subscription",
];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::ORDER;

    /// The module a `crate::NAME` path names (the crate root re-exports a
    /// few types).
    fn module_of(name: &str) -> &str {
        match name {
            "CompiledFlow" | "load_flow" => "validate",
            "Error" | "Diagnostic" => "error",
            "Flow" => "flow",
            other => other,
        }
    }

    /// Every `crate::…` a module's code (not its comments or tests) names.
    fn uses(text: &str) -> Vec<String> {
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let mut out = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.push(module_of(&name).to_string());
                }
            }
        }
        out
    }

    /// Every source file but the crate root and this one.
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs")
                && !matches!(path.file_name().and_then(|n| n.to_str()), Some("lib.rs" | "layers.rs"))
            {
                out.push(path);
            }
        }
    }

    /// The module of [`ORDER`] a file is (part of): the deepest name on its
    /// path that is one (`mod.rs` is its folder); `None` for a layer
    /// folder's `mod.rs`.
    fn module_of_file(src: &Path, file: &Path) -> Option<&'static str> {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let mut names: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        if names.last().is_some_and(|n| n == "mod") {
            names.pop();
        }
        names.iter().rev().find_map(|n| ORDER.iter().copied().find(|m| m == n))
    }

    #[test]
    fn every_module_uses_only_modules_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let mut broken = Vec::new();
        for f in all {
            let text = std::fs::read_to_string(&f).unwrap();
            let Some(module) = module_of_file(&src, &f) else {
                // A layer folder's `mod.rs` declares its modules, nothing else.
                if !uses(&text).is_empty() {
                    broken.push(format!("{} is in no module of layers::ORDER but has code", f.display()));
                }
                continue;
            };
            let rank = ORDER.iter().position(|m| *m == module).unwrap();
            for used in uses(&text) {
                match ORDER.iter().position(|m| *m == used) {
                    Some(r) if r < rank || used == module => {}
                    Some(_) => broken.push(format!("{} uses crate::{used}, which stands above it", f.display())),
                    None => broken.push(format!("{} uses crate::{used}, which is not in layers::ORDER", f.display())),
                }
            }
        }
        assert!(broken.is_empty(), "{}", broken.join("\n"));
    }

    #[test]
    fn every_module_of_the_crate_has_its_place() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let found: Vec<&str> = all.iter().filter_map(|f| module_of_file(&src, f)).collect();
        for m in ORDER {
            assert!(found.contains(m), "layers::ORDER names `{m}`, which has no file");
        }
        for f in &all {
            let name = f.file_stem().unwrap().to_string_lossy();
            let folder = f.parent().unwrap().file_name().unwrap().to_string_lossy();
            let placed = ORDER.contains(&name.as_ref())
                || (name == "mod" && ORDER.contains(&folder.as_ref()))
                || module_of_file(&src, f) == Some("subscription")
                || (name == "mod"
                    && std::fs::read_to_string(f)
                        .unwrap()
                        .lines()
                        .all(|l| l.is_empty() || l.starts_with("//") || l.starts_with("pub mod ")));
            assert!(placed, "{} is a module missing from layers::ORDER", f.display());
        }
    }

    #[test]
    fn the_check_sees_an_upward_import() {
        assert_eq!(uses("use crate::engine::Health;\n// crate::run in a comment\n"), vec!["engine"]);
        assert_eq!(uses("fn f() -> crate::CompiledFlow {}\n#[cfg(test)]\nuse crate::subscription;"), vec!["validate"]);
        let src = Path::new("/s");
        assert_eq!(module_of_file(src, Path::new("/s/util/text.rs")), Some("text"));
        assert_eq!(module_of_file(src, Path::new("/s/run/mod.rs")), Some("run"));
        assert_eq!(module_of_file(src, Path::new("/s/subscription/record.rs")), Some("subscription"));
        assert_eq!(module_of_file(src, Path::new("/s/util/mod.rs")), None);
    }
}
