//! Loading the configuration, for a start or a reload. `config` reads the
//! file, applies the environment and CLI overrides and validates every
//! section; the checks that need a stage's code run here, after it: the bot
//! patterns compile, every tracking plan and the referrer list load. An
//! error names the offending key either way, and a configuration that fails
//! is never applied.

use crate::config::{Config, ConfigError, LoadOptions};

/// [`Config::load_with_text`], then the stages' checks.
pub fn load_with_text(opts: &LoadOptions) -> Result<(Config, String), ConfigError> {
    let (config, text) = Config::load_with_text(opts)?;
    check_stages(&config)?;
    Ok((config, text))
}

/// [`Config::from_toml`], then the stages' checks.
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    let config = Config::from_toml(text)?;
    check_stages(&config)?;
    Ok(config)
}

/// The checks that need a stage's code.
pub fn check_stages(config: &Config) -> Result<(), ConfigError> {
    crate::bots::check(config)?;
    crate::quality::check(config)
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
            Err(ConfigError::Key { key, .. }) => assert!(key.contains("extra_patterns"), "{key}"),
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
    fn a_good_configuration_loads() {
        assert!(from_toml(SOURCE).is_ok());
    }
}
