//! The official Python SDK (`e2b` 2.63.0, installed by scripts/ci/setup-30-sdk.sh) against a
//! real envd: the flows of tests/sdk/envd_sdk.py must all pass.

mod common;

use std::path::PathBuf;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_flows_pass_against_envd() {
    let venv = std::env::var_os("BULKHEAD_SDK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/bulkhead-sdk-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/ci/setup-30-sdk.sh",
        python.display()
    );
    let envd = start_with(|c| c.access_token = token("sdk-token")).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/envd_sdk.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("ENVD_URL", &envd.base)
        .env("ENVD_TOKEN", "sdk-token")
        .env("ENVD_HOME", &envd.home)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK flows failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("all SDK flows passed"), "{stdout}");
}
