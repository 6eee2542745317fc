//! The official JS SDK (`e2b` 2.51.0, installed by scripts/ci/setup-30-sdk.sh) against a real
//! envd: the flows of tests/sdk/envd_sdk.cjs must all pass.

mod common;

use std::path::PathBuf;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_flows_pass_against_envd() {
    let dir = std::env::var_os("BULKHEAD_SDK_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/bulkhead-sdk-js"));
    assert!(
        dir.join("node_modules/e2b/package.json").exists(),
        "{} has no e2b: run scripts/ci/setup-30-sdk.sh",
        dir.display()
    );
    let envd = start_with(|c| c.access_token = token("sdk-token")).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/envd_sdk.cjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .env("ENVD_URL", &envd.base)
        .env("ENVD_TOKEN", "sdk-token")
        .env("ENVD_HOME", &envd.home)
        .env("SDK_JS_DIR", &dir)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK flows failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all SDK flows passed"), "{stdout}");
}
