//! Secrets for the dev server: a file (JSON object or `.env` lines) and
//! `HOOKFLOW_SECRET_<NAME>` environment variables (which win).

use std::collections::HashMap;
use std::path::Path;

use crate::Error;

/// Secret values by name. Values never reach a log or the store.
#[derive(Default, Clone)]
pub struct Secrets {
    values: HashMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} names)", self.values.len())
    }
}

/// `partner-token.v2` -> `PARTNER_TOKEN_V2`.
pub fn env_name(name: &str) -> String {
    let up: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("HOOKFLOW_SECRET_{up}")
}

/// How to give `hookflow dev` the secret `name`.
pub fn how_to_set(name: &str) -> String {
    format!("add `{name}` to the --secrets-file, or export {}=…, and restart", env_name(name))
}

impl Secrets {
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Secrets { values: pairs.into_iter().collect() }
    }

    /// Loads `file` (if any). Returns the secrets and warnings to print.
    pub fn load(file: Option<&Path>) -> Result<(Self, Vec<String>), Error> {
        let mut warnings = Vec::new();
        let mut values = HashMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o044 != 0
                {
                    warnings.push(format!(
                        "{} is readable by other users; run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    ));
                }
            }
            if text.trim_start().starts_with('{') {
                let map: HashMap<String, serde_json::Value> = serde_json::from_str(&text)
                    .map_err(|e| Error::Config(format!("{}:{}:{}: {e}", path.display(), e.line(), e.column())))?;
                for (k, v) in map {
                    let s = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                    values.insert(k, s);
                }
            } else {
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let line = line.strip_prefix("export ").unwrap_or(line);
                    let (k, v) = line
                        .split_once('=')
                        .ok_or_else(|| Error::Config(format!("{}:{}: expected NAME=value", path.display(), i + 1)))?;
                    let v = v.trim();
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                    values.insert(k.trim().to_string(), v.to_string());
                }
            }
        }
        Ok((Secrets { values }, warnings))
    }

    /// The value of `name` (`name#key` selects a key of a JSON value).
    pub fn get(&self, name: &str) -> Option<String> {
        let (base, key) = match name.split_once('#') {
            Some((b, k)) => (b, Some(k)),
            None => (name, None),
        };
        let raw = std::env::var(env_name(base)).ok().or_else(|| self.values.get(base).cloned())?;
        match key {
            None => Some(raw),
            Some(k) => {
                let v: serde_json::Value = serde_json::from_str(&raw).ok()?;
                v.get(k).map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
            }
        }
    }

    /// Every value, for redaction by value.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.values().map(String::as_str)
    }
}

/// Secrets from the file and the environment, as the engine's secret store.
impl hookflow_core::ports::SecretStore for Secrets {
    async fn secret(&self, name: &str) -> Result<Option<String>, hookflow_core::ports::PortError> {
        Ok(self.get(name))
    }
}
