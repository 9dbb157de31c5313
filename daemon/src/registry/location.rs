//! Where HybridRAG's registry lives: `$HYBRIDRAG_CONFIG`, else the path written in
//! `~/.hybridrag/config_pointer`, else `~/.hybridrag/registry.yaml`.

use std::path::{Path, PathBuf};

/// Resolves the registry path from the environment and the home directory.
pub fn default_registry_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    resolve(
        std::env::var_os("HYBRIDRAG_CONFIG").map(PathBuf::from),
        home.as_deref(),
    )
}

fn resolve(explicit: Option<PathBuf>, home: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Some(p);
    }
    let base = home?.join(".hybridrag");
    if let Ok(text) = std::fs::read_to_string(base.join("config_pointer")) {
        let pointed = text.trim();
        if !pointed.is_empty() {
            return Some(expand_home(pointed, home));
        }
    }
    Some(base.join("registry.yaml"))
}

fn expand_home(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_prefers_env_then_pointer_then_default() -> std::io::Result<()> {
        let home = tempfile::tempdir()?;
        let h = home.path();
        assert_eq!(
            resolve(Some("/x/reg.yaml".into()), Some(h)),
            Some(PathBuf::from("/x/reg.yaml"))
        );
        assert_eq!(
            resolve(None, Some(h)),
            Some(h.join(".hybridrag/registry.yaml"))
        );
        std::fs::create_dir_all(h.join(".hybridrag"))?;
        std::fs::write(h.join(".hybridrag/config_pointer"), "~/elsewhere/r.yaml\n")?;
        assert_eq!(resolve(None, Some(h)), Some(h.join("elsewhere/r.yaml")));
        Ok(())
    }
}
