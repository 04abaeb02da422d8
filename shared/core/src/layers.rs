//! The order core's modules stand in, bottom up: a module uses only
//! modules before it in [`ORDER`]. Its test reads the sources and fails on
//! an import that breaks the order (which is how an import cycle would
//! start). `docs/ARCHITECTURE.md` ("Modules") describes each. Compiled
//! for tests only: it is a check, not code.

/// Core's modules, bottom up.
pub(crate) const ORDER: &[&str] = &[
    "text",
    "scrub",
    "duration",
    "headers",
    "events",
    "status",
    "ssrf",
    "template",
    "source",
    "error",
    "retry",
    "signature",
    "flow",
    "keyring",
    "validate",
    "schema",
    "request",
    "run",
    "auth",
    "attempt",
    "commit",
    "engine",
    "ports",
    "inbound",
    "subscription",
];

#[cfg(test)]
mod tests {
    use std::path::Path;

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

    #[test]
    fn every_module_uses_only_modules_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut broken = Vec::new();
        for (rank, module) in ORDER.iter().enumerate() {
            let file = src.join(format!("{module}.rs"));
            let files = if file.exists() {
                vec![file]
            } else {
                let dir = src.join(module);
                let mut files: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .map(|e| e.unwrap().path())
                    .collect();
                files.sort();
                files
            };
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                for used in uses(&text) {
                    match ORDER.iter().position(|m| *m == used) {
                        Some(r) if r < rank || used == *module => {}
                        Some(_) => broken.push(format!("{} uses crate::{used}, which stands above it", f.display())),
                        None => {
                            broken.push(format!("{} uses crate::{used}, which is not in layers::ORDER", f.display()))
                        }
                    }
                }
            }
        }
        assert!(broken.is_empty(), "{}", broken.join("\n"));
    }

    #[test]
    fn every_module_of_the_crate_has_its_place() {
        let lib = include_str!("lib.rs");
        for line in lib.lines() {
            let Some(name) = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod ")) else { continue };
            let name = name.trim_end_matches(';');
            assert!(name == "layers" || ORDER.contains(&name), "module `{name}` is missing from layers::ORDER");
        }
    }

    #[test]
    fn the_check_sees_an_upward_import() {
        assert_eq!(uses("use crate::engine::Health;\n// crate::run in a comment\n"), vec!["engine"]);
        assert_eq!(uses("fn f() -> crate::CompiledFlow {}\n#[cfg(test)]\nuse crate::subscription;"), vec!["validate"]);
    }
}
