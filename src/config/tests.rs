//! Loading, defaults, overrides and key-naming errors of the whole file.

use super::env::{apply_override, env_key_to_path};
use super::*;

const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9464"
[kafka]
brokers = "127.0.0.1:9092"
[[sources]]
id = "web"
write_key = "wk_live_abc"
allowed_origins = ["https://shop.example"]
"#;

#[test]
fn minimal_file_loads_with_defaults() {
    let c = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(c.kafka.acks, "1");
    assert_eq!(c.kafka.compression, Compression::Lz4);
    assert_eq!(c.limits.max_event_bytes, 32 * 1024);
    assert_eq!(c.limits.max_request_bytes, 500 * 1024);
    assert_eq!(c.limits.max_batch_events, 2500);
    assert_eq!(c.kafka.topics.clicks, "tracking.raw.clicks");
    assert_eq!(c.sources[0].allowed_origins, vec!["https://shop.example"]);
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_toml(&format!("{MINIMAL}\n[limits]\nmax_evnt_bytes = 3\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_evnt_bytes"), "{err}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = MINIMAL.replace("[kafka]", "[kafka]\nlinger_ms = \"soon\"");
    let err = Config::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("kafka.linger_ms"), "{err}");
}

#[test]
fn server_keys_are_secret_distinct_and_may_come_from_the_environment() {
    let with = |extra: &str| {
        Config::from_toml(&MINIMAL.replace("allowed_origins", &format!("{extra}\nallowed_origins")))
    };
    let c = with("server_key = \"sk_0123456789abcdef\"").unwrap();
    assert_eq!(
        c.sources[0].server_key.as_deref(),
        Some("sk_0123456789abcdef")
    );
    for (extra, message) in [
        ("server_key = \"short\"", "at least 16"),
        ("server_key = \"wk_live_abc\"", "at least 16"),
        (
            "server_key_env = \"TRACKGATE_TEST_UNSET_SERVER_KEY\"",
            "is not set",
        ),
        (
            "server_key = \"sk_0123456789abcdef\"\nserver_key_env = \"X\"",
            "not both",
        ),
    ] {
        let err = with(extra).unwrap_err().to_string();
        assert!(
            err.contains("sources[0].server_key") && err.contains(message),
            "{err}"
        );
    }
    let text = MINIMAL
        .replace("wk_live_abc", "wk_live_0123456789abcdef")
        .replace(
            "allowed_origins",
            "server_key = \"wk_live_0123456789abcdef\"\nallowed_origins",
        );
    let err = Config::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("differ from every write key"), "{err}");
    let mut c: Config = toml::from_str(&MINIMAL.replace(
        "allowed_origins",
        "server_key_env = \"SK\"\nallowed_origins",
    ))
    .unwrap();
    c.resolve_server_keys(|n| (n == "SK").then(|| "sk_from_the_environment".to_string()))
        .unwrap();
    assert_eq!(
        c.sources[0].server_key.as_deref(),
        Some("sk_from_the_environment")
    );
}

#[test]
fn source_ids_cannot_break_optout_record_keys() {
    for id in ["we:b", "*"] {
        let err = Config::from_toml(&MINIMAL.replace("id = \"web\"", &format!("id = {id:?}")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sources[0].id"), "{err}");
    }
}

#[test]
fn path_prefix_is_validated() {
    for ok in ["", "/collect", "/a/b-c_d.e~f"] {
        let text = MINIMAL.replace("[kafka]", &format!("path_prefix = \"{ok}\"\n[kafka]"));
        assert_eq!(Config::from_toml(&text).unwrap().server.path_prefix, ok);
    }
    for bad in ["collect", "/collect/", "/", "//x", "/a b", "/a?b"] {
        let text = MINIMAL.replace("[kafka]", &format!("path_prefix = \"{bad}\"\n[kafka]"));
        let err = Config::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("server.path_prefix"), "{bad}: {err}");
    }
}

#[test]
fn validation_names_the_key() {
    let text = format!("{MINIMAL}\n[[sources]]\nid = \"app\"\nwrite_key = \"wk_live_abc\"\n");
    let err = Config::from_toml(&text).unwrap_err().to_string();
    assert!(err.contains("sources[1].write_key"), "{err}");
}

#[test]
fn statistics_interval_is_bounded_by_librdkafkas_limit() {
    let over = MINIMAL.replace("[kafka]", "[kafka]\nstatistics_interval_ms = 86400001");
    let err = Config::from_toml(&over).unwrap_err().to_string();
    assert!(err.contains("kafka.statistics_interval_ms"), "{err}");
    let off = MINIMAL.replace("[kafka]", "[kafka]\nstatistics_interval_ms = 0");
    assert_eq!(
        Config::from_toml(&off)
            .unwrap()
            .kafka
            .statistics_interval_ms,
        0
    );
}

#[test]
fn overrides_reach_nested_keys_and_keep_string_types() {
    let overrides = [
        ("kafka.brokers".to_string(), "10.0.0.1:9092".to_string()),
        ("kafka.acks".to_string(), "all".to_string()),
        ("kafka.linger_ms".to_string(), "20".to_string()),
        ("sources.0.write_key".to_string(), "12345".to_string()),
        ("kafka.topics.clicks".to_string(), "c".to_string()),
    ];
    let c = Config::from_toml_with_overrides(MINIMAL, overrides.iter()).unwrap();
    assert_eq!(c.kafka.brokers, "10.0.0.1:9092");
    assert_eq!(c.kafka.acks, "all");
    assert_eq!(c.kafka.linger_ms, 20);
    assert_eq!(c.sources[0].write_key, "12345");
    assert_eq!(c.kafka.topics.clicks, "c");
}

#[test]
fn env_var_names_map_to_paths() {
    let path = |var: &str| env_key_to_path(var).join("|");
    assert_eq!(
        path("TRACKGATE_KAFKA__TOPICS__CLICKS"),
        "kafka|topics|clicks"
    );
    assert_eq!(path("TRACKGATE_SOURCES__0__ID"), "sources|0|id");
    // librdkafka properties: dots as `.` or `_`; `_FILE` is the file form.
    assert_eq!(
        path("TRACKGATE_KAFKA__PROPERTIES__SASL_PASSWORD"),
        "kafka|properties|sasl.password"
    );
    assert_eq!(
        path("TRACKGATE_KAFKA__PROPERTIES__sasl.password"),
        "kafka|properties|sasl.password"
    );
    assert_eq!(
        path("TRACKGATE_KAFKA__PROPERTIES__SASL_PASSWORD_FILE"),
        "kafka|properties|sasl.password_file"
    );
}

#[test]
fn env_overrides_reach_dotted_librdkafka_properties() {
    let mut root: toml::Value = toml::from_str(MINIMAL).unwrap();
    for (var, value) in [
        ("TRACKGATE_KAFKA__PROPERTIES__SASL_PASSWORD", "pw-from-env"),
        ("TRACKGATE_KAFKA__PROPERTIES__SECURITY_PROTOCOL", "sasl_ssl"),
    ] {
        apply_override(&mut root, &env_key_to_path(var), value).unwrap();
    }
    let c: Config = root.try_into().unwrap();
    assert_eq!(c.kafka.properties["sasl.password"], "pw-from-env");
    assert_eq!(c.kafka.properties["security.protocol"], "sasl_ssl");
}

/// A file holding a server key on its fourth line.
const WITH_SECRET: &str = "[server]\nlisten = \"127.0.0.1:8080\"\n[[sources]]\nserver_key = \"sk_live_TOPSECRET_0123\"\nid = \"web\"\nwrite_key = \"wk\"\n";

#[test]
fn a_syntax_error_names_the_line_and_never_quotes_it() {
    let broken = WITH_SECRET.replace("sk_live_TOPSECRET_0123\"", "sk_live_TOPSECRET_0123");
    let err = Config::from_toml(&broken).unwrap_err().to_string();
    assert!(err.contains("line 4"), "{err}");
    assert!(!err.contains("TOPSECRET"), "{err}");
    // The error `toml` itself gives quotes the line: the finding this fixes.
    let quoted = toml::from_str::<toml::Value>(&broken)
        .unwrap_err()
        .to_string();
    assert!(quoted.contains("TOPSECRET"), "{quoted}");
}

#[test]
fn errors_about_secret_keys_name_the_key_and_line_not_the_value() {
    let short = WITH_SECRET.replace("sk_live_TOPSECRET_0123", "TOPSECRET");
    let err = Config::from_toml(&short).unwrap_err().to_string();
    assert!(
        err.contains("sources[0].server_key") && err.contains("line 4"),
        "{err}"
    );
    assert!(!err.contains("TOPSECRET"), "{err}");
    let wrong_type = WITH_SECRET.replace("\"sk_live_TOPSECRET_0123\"", "[\"TOPSECRET\"]");
    let err = Config::from_toml(&wrong_type).unwrap_err().to_string();
    assert!(err.contains("sources[0].server_key"), "{err}");
    assert!(!err.contains("TOPSECRET"), "{err}");
}

fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let env = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    Config::build(text.to_string(), std::iter::empty(), &env, None)
}

#[test]
fn variables_fill_string_values_and_an_unset_one_names_key_and_line() {
    let text = WITH_SECRET.replace("sk_live_TOPSECRET_0123", "${SK}");
    let loaded = with_env(&text, &[("SK", "sk_from_the_environment")]).unwrap();
    assert_eq!(
        loaded.config.sources[0].server_key.as_deref(),
        Some("sk_from_the_environment")
    );
    assert_eq!(loaded.redacted["sources"][0]["server_key"], REDACTED);
    let err = with_env(&text, &[]).unwrap_err().to_string();
    assert!(
        err.contains("sources[0].server_key") && err.contains("line 4") && err.contains("SK"),
        "{err}"
    );
    // A value cannot change the file's structure.
    let loaded = with_env(&text, &[("SK", "sk\"\nid = \"injected_0123")]).unwrap();
    assert_eq!(loaded.config.sources[0].id, "web");
    // `$${` is a literal `${`.
    let text = WITH_SECRET.replace("sk_live_TOPSECRET_0123", "$${NOT_A_VAR}_0123456789");
    let loaded = with_env(&text, &[]).unwrap();
    assert_eq!(
        loaded.config.sources[0].server_key.as_deref(),
        Some("${NOT_A_VAR}_0123456789")
    );
}

#[test]
fn secret_files_are_read_relative_to_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.key"), "sk_from_a_file_0123\n").unwrap();
    let text = WITH_SECRET.replace(
        "server_key = \"sk_live_TOPSECRET_0123\"",
        "server_key_file = \"server.key\"",
    );
    let file = dir.path().join("trackgate.toml");
    std::fs::write(&file, &text).unwrap();
    let loaded = Config::load_full(&LoadOptions {
        file: Some(file),
        overrides: Vec::new(),
    })
    .unwrap();
    assert_eq!(
        loaded.config.sources[0].server_key.as_deref(),
        Some("sk_from_a_file_0123")
    );
    assert_eq!(loaded.secret_files, [dir.path().join("server.key")]);
    assert!(!loaded.redacted.to_string().contains("sk_from_a_file"));

    // Every secret key has the form: the pseudonym key too.
    std::fs::write(
        dir.path().join("pseudonym.key"),
        "pseudonym key from a file",
    )
    .unwrap();
    let text =
        format!("{MINIMAL}[sources.privacy.scrub]\npseudonym_secret_file = \"pseudonym.key\"\n");
    let file = dir.path().join("trackgate.toml");
    std::fs::write(&file, &text).unwrap();
    let loaded = Config::load_full(&LoadOptions {
        file: Some(file),
        overrides: Vec::new(),
    })
    .unwrap();
    assert_eq!(
        loaded.config.sources[0]
            .privacy
            .scrub
            .pseudonym_secret
            .as_deref(),
        Some("pseudonym key from a file")
    );
}

#[test]
fn the_inspector_needs_a_token_off_loopback() {
    let open = MINIMAL.replace("127.0.0.1:9464", "0.0.0.0:9464");
    let err = Config::from_toml(&open).unwrap_err().to_string();
    assert!(
        err.contains("inspect.token") && err.contains("loopback"),
        "{err}"
    );
    assert!(Config::from_toml(&format!("{open}\n[inspect]\ntoken = \"t0ken\"\n")).is_ok());
    assert!(Config::from_toml(&format!("{open}\n[inspect]\nenabled = false\n")).is_ok());
    let v6 = MINIMAL.replace("127.0.0.1:9464", "[::1]:9464");
    assert!(Config::from_toml(&v6).is_ok());
}

#[test]
fn development_config_is_valid_and_embedded() {
    let c = Config::from_toml(&Config::development_toml()).unwrap();
    assert!(c.uses_embedded_broker());
    assert_eq!(c.sources[0].write_key, DEV_WRITE_KEY);
}

#[test]
fn example_config_is_valid_and_complete() {
    let text = include_str!("../../config/trackgate.example.toml");
    let c = Config::from_toml(text).unwrap();
    assert_eq!(c.sources.len(), 2);
    assert_eq!(c.privacy.optout_topic, "tracking.optouts");
    assert_eq!(c.sources[0].privacy.ip, IpMode::Truncate);
}
