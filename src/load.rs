//! Loading the configuration, for a start or a reload. `config` reads the
//! file, applies the environment and CLI overrides and validates every
//! section; the checks that need a stage's code run here, after it: the bot
//! patterns compile, every tracking plan and the referrer list load. An
//! error names the offending key either way, and a configuration that fails
//! is never applied.
//!
//! A load also says which files the configuration reads besides the main
//! one (tracking plans and their schema files, the referrer list, the bot
//! patterns file, the GeoIP database, secret files): the reload watches
//! them all and hashes them with the main file, so editing only a plan
//! and sending SIGHUP applies it.

use std::path::PathBuf;

use crate::config::{Config, ConfigError, LoadOptions, Loaded};

/// [`Config::load_full`], then the stages' checks.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let loaded = Config::load_full(opts)?;
    check_stages(&loaded.config).map_err(|e| e.located(&loaded.text))?;
    Ok(loaded)
}

/// [`Config::from_toml`], then the stages' checks.
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    let config = Config::from_toml(text)?;
    check_stages(&config).map_err(|e| e.located(text))?;
    Ok(config)
}

/// The checks that need a stage's code.
pub fn check_stages(config: &Config) -> Result<(), ConfigError> {
    crate::bots::check(config)?;
    crate::quality::check(config)
}

/// Every file besides the main one that `loaded` was read from, sorted,
/// each once.
pub fn referenced_files(loaded: &Loaded) -> Vec<PathBuf> {
    let c = &loaded.config;
    let mut files = loaded.secret_files.clone();
    files.extend(c.bots.patterns_file.clone());
    files.extend(c.quality.referrers_file.clone());
    files.extend(c.privacy.geoip_database.clone());
    for s in &c.sources {
        files.extend(crate::quality::plan::files(&s.quality.plan));
    }
    files.retain(|f| !f.as_os_str().is_empty());
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "[[sources]]\nid = \"w\"\nwrite_key = \"k\"\n";

    #[test]
    fn a_bad_bot_pattern_is_refused_naming_its_key() {
        let text = format!("[bots]\nextra_patterns = [\"(unclosed\"]\n{SOURCE}");
        // The sections alone are well formed.
        assert!(Config::from_toml(&text).is_ok());
        match from_toml(&text) {
            Err(ConfigError::Key { key, message }) => {
                assert!(key.contains("extra_patterns"), "{key}");
                assert!(message.ends_with("(line 2)"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_tracking_plan_is_refused_naming_its_key() {
        let text = format!("{SOURCE}[sources.quality.plan]\nfile = \"/nonexistent/plan.json\"\n");
        assert!(Config::from_toml(&text).is_ok());
        match from_toml(&text) {
            Err(ConfigError::Key { key, .. }) => assert_eq!(key, "sources[0].quality.plan.file"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_referrer_list_is_refused_naming_its_key() {
        let text = format!("[quality]\nreferrers_file = \"/nonexistent/referers.json\"\n{SOURCE}");
        match from_toml(&text) {
            Err(ConfigError::Key { key, .. }) => assert_eq!(key, "quality.referrers_file"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_file_a_configuration_reads_is_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("schema.json"), r#"{"type":"object"}"#).unwrap();
        std::fs::write(
            d.join("plan.json"),
            r#"{"track":{"Signed Up":"schema.json","Inline":{"type":"object"}},"page":"page.json"}"#,
        )
        .unwrap();
        std::fs::write(d.join("page.json"), r#"{"type":"object"}"#).unwrap();
        std::fs::write(d.join("bots.txt"), "examplebot\n").unwrap();
        std::fs::write(d.join("sk"), "sk_0123456789abcdef\n").unwrap();
        let text = format!(
            "[bots]\npatterns_file = \"{bots}\"\n[[sources]]\nid = \"w\"\nwrite_key = \"k\"\nserver_key_file = \"sk\"\n[sources.quality.plan]\nfile = \"{plan}\"\n",
            bots = d.join("bots.txt").display(),
            plan = d.join("plan.json").display(),
        );
        let file = d.join("trackgate.toml");
        std::fs::write(&file, text).unwrap();
        let loaded = load(&LoadOptions {
            file: Some(file),
            overrides: Vec::new(),
        })
        .unwrap();
        let mut expected: Vec<_> = ["bots.txt", "page.json", "plan.json", "schema.json", "sk"]
            .iter()
            .map(|f| d.join(f))
            .collect();
        expected.sort();
        assert_eq!(referenced_files(&loaded), expected);
    }

    #[test]
    fn secrets_from_variables_and_files_reach_the_kafka_client_configuration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kafka.password"), "pw-from-a-file\n").unwrap();
        let file = dir.path().join("trackgate.toml");
        std::fs::write(
            &file,
            format!(
                "[kafka.properties]\n\"sasl.username\" = \"${{LOAD_TEST_SASL_USER}}\"\n\"sasl.password_file\" = \"kafka.password\"\n{SOURCE}"
            ),
        )
        .unwrap();
        std::env::set_var("LOAD_TEST_SASL_USER", "user-from-env");
        let loaded = load(&LoadOptions {
            file: Some(file),
            overrides: Vec::new(),
        })
        .unwrap();
        let cc = crate::sink::kafka::client_config(&loaded.config.kafka, "127.0.0.1:9092");
        assert_eq!(cc.get("sasl.username"), Some("user-from-env"));
        assert_eq!(cc.get("sasl.password"), Some("pw-from-a-file"));
        assert!(cc.get("sasl.password_file").is_none());
        let shown = loaded.redacted.to_string();
        assert!(!shown.contains("pw-from-a-file"), "{shown}");
    }

    #[test]
    fn a_good_configuration_loads() {
        assert!(from_toml(SOURCE).is_ok());
    }
}
