//! Loading, defaults, overrides and key-naming errors of the whole file.

use super::env::env_key_to_path;
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
    assert_eq!(
        env_key_to_path("TRACKGATE_KAFKA__TOPICS__CLICKS"),
        "kafka.topics.clicks"
    );
    assert_eq!(env_key_to_path("TRACKGATE_SOURCES__0__ID"), "sources.0.id");
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
