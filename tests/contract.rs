//! docs/openapi.yaml is the contract: schemathesis (PyPI, installed by
//! tests/clients/setup.sh) generates requests from it, valid and invalid,
//! against the real gateway and broker, and every check must pass (status
//! codes and bodies as documented, schema-violating requests refused,
//! conforming ones accepted, 405 with `Allow` on other methods, no 5xx).
//! Examples are bounded and the seed fixed, so a run is reproducible. The
//! gateway's accounting must balance afterwards.
//!
//! TEST_CLIENTS_SKIP=1 skips it; otherwise a missing schemathesis fails it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// Examples per operation and phase: enough to walk every field's edge
/// cases, few enough to keep the run under a minute or two.
const MAX_EXAMPLES: &str = "40";
const SEED: &str = "20261129";

fn schemathesis() -> Option<PathBuf> {
    if std::env::var("TEST_CLIENTS_SKIP").as_deref() == Ok("1") {
        eprintln!("TEST_CLIENTS_SKIP=1: contract test skipped");
        return None;
    }
    let venvs = std::env::var("TRACKGATE_CLIENTS_VENVS").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/trackgate"),
        PathBuf::from,
    );
    let st = venvs.join("clients-venv/bin/st");
    assert!(
        st.exists(),
        "{} is missing: run tests/clients/setup.sh (or set TEST_CLIENTS_SKIP=1)",
        st.display()
    );
    Some(st)
}

#[test]
fn the_gateway_keeps_the_openapi_contract() {
    let Some(st) = schemathesis() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let broker = Broker::start();
    // Schemathesis sends a few thousand requests from one address.
    let gw = Gateway::start_with(&broker.addr(), "[rate_limit]\nenabled = false\n");
    let out = Command::new(st)
        .current_dir(root)
        .args([
            "--config-file",
            "tests/clients/schemathesis.toml",
            "run",
            "docs/openapi.yaml",
            "--url",
            &format!("http://{}", gw.addr),
            "--header",
            &format!("Authorization: {}", basic(WRITE_KEY)),
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--no-color",
            "--output-truncate",
            "true",
        ])
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found contract violations:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{}",
        report.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );

    // Whatever was thrown at it, no 5xx and the accounting balances.
    let metrics = gw.metrics();
    for status in ["500", "502", "503", "504"] {
        assert_eq!(
            metric_sum(
                &metrics,
                "trackgate_http_requests_total",
                &[("status", status)]
            ),
            0.0,
            "{status} answers"
        );
    }
    let a = settle(&gw);
    a.assert_identities();
    assert!(a.received > 0.0 && a.accepted > 0.0, "{a:?}");
}
