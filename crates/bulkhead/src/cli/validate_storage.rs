//! `bulkhead validate`'s storage checks: the storage is a mount point where the agent
//! expects it and lists, and a file written there in the sandbox reads back identical in the
//! sandbox and from the bucket itself (through the server), then is removed from both.

use std::time::{Duration, Instant};

use bulkhead_envd::client::{EnvdClient, RunOptions};
use serde_json::Value;
use sha2::Digest as _;

use super::validate::{Api, Args, Report, hex, shell_quote, urlencode};

/// Whether the storage is where the agent expects it, a mount point, and lists.
pub(super) async fn mount_check(
    args: &Args,
    storage: &Value,
    envd: &EnvdClient,
    r: &mut Report,
) -> bool {
    let want = args.storage_path.display().to_string();
    if storage.is_null() {
        r.fail(
            "storage mount",
            format!("sandboxes of this template get no storage (expected at {want})"),
            "start `bulkhead serve` with --storage-bucket (keys in its environment), or declare [storage] in the template's e2b.toml",
        );
        return false;
    }
    let have = storage["path"].as_str().unwrap_or("");
    if have != want {
        r.fail(
            "storage mount",
            format!("sandboxes see the storage at {have}, not at {want}"),
            "set --storage-path (or STORAGE_BASE_PATH) to where the agent looks, or the server's --storage-path / the template's [storage] path",
        );
        return false;
    }
    let script = format!(
        "p={q}; [ -d \"$p\" ] || {{ echo 'no such directory'; exit 3; }}; \
         t=$(awk -v p=\"$p\" '$5==p {{for(i=7;i<=NF;i++) if($i==\"-\"){{print $(i+1); break}}}}' /proc/self/mountinfo | tail -n1); \
         [ -n \"$t\" ] || {{ echo 'a directory, not a mount point'; exit 4; }}; \
         out=$(ls -A \"$p\" 2>&1) || {{ echo \"cannot be listed: $out\"; exit 5; }}; \
         n=$(printf '%s\\n' \"$out\" | grep -c .); echo \"$t $n\"",
        q = shell_quote(&want)
    );
    match envd.run(&script, &RunOptions::default()).await {
        Ok(o) if o.exit_code == 0 => {
            let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let (fstype, n) = out.split_once(' ').unwrap_or((&out, "?"));
            let kind = storage["kind"].as_str().unwrap_or("?");
            let what = match kind {
                "bucket" => format!(
                    "bucket {}{}",
                    storage["bucket"].as_str().unwrap_or("?"),
                    storage["keyPrefix"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .map(|p| format!(":{p}"))
                        .unwrap_or_default()
                ),
                _ => "a local directory of the server".into(),
            };
            r.pass(
                "storage mount",
                format!(
                    "{want} is a mount point ({fstype}, {what}{}) and lists ({n} entries)",
                    if storage["readOnly"].as_bool() == Some(true) {
                        ", read-only"
                    } else {
                        ""
                    }
                ),
            );
            true
        }
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stdout).trim().to_string();
            r.fail(
                "storage mount",
                format!("{want} in the sandbox: {why}"),
                "see the server's log: the storage mount (`bulkhead mount`) may have died; restarting `bulkhead serve` mounts it again",
            );
            false
        }
        Err(e) => {
            r.fail(
                "storage mount",
                format!("cannot run the check in the sandbox: {e}"),
                "see the server's log",
            );
            false
        }
    }
}

/// Writes a file under `executions/` from the sandbox, reads it back in the sandbox and from
/// the bucket (through the server), removes it and checks it is gone from the bucket.
pub(super) async fn round_trip(
    args: &Args,
    api: &Api,
    id: &str,
    storage: &Value,
    envd: &EnvdClient,
    r: &mut Report,
) {
    const NAME: &str = "storage round trip";
    if storage["readOnly"].as_bool() == Some(true) {
        r.not_run(&[NAME], "the storage is read-only");
        return;
    }
    let file = format!(
        "{}/executions/bulkhead-validate-{}.bin",
        args.storage_path.display(),
        &hex(&rand::random::<[u8; 6]>())
    );
    // Random bytes made in the sandbox, written and closed by one process, read back by
    // another; the sandbox reports their digest, compared with the bucket's copy below.
    let write = format!(
        "set -e; f={f}; d=\"$(dirname \"$f\")\"; [ -d \"$d\" ] || {{ mkdir -p \"$d\"; echo made-dir; }}; \
         head -c {n} /dev/urandom > \"$f\"; sha256sum \"$f\" | cut -d' ' -f1",
        f = shell_quote(&file),
        n = args.storage_probe_size
    );
    let opts = RunOptions::default();
    let t0 = Instant::now();
    let made_dir;
    let sum = match envd.run(&write, &opts).await {
        Ok(o) if o.exit_code == 0 => {
            let out = String::from_utf8_lossy(&o.stdout);
            made_dir = out.lines().any(|l| l == "made-dir");
            out.lines().last().unwrap_or("").trim().to_string()
        }
        Ok(o) => {
            r.fail(
                NAME,
                format!(
                    "writing {file} in the sandbox failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                "check that the bucket's keys may write (the server's log names the refused request)",
            );
            let _ = envd
                .run(&format!("rm -f {}", shell_quote(&file)), &opts)
                .await;
            return;
        }
        Err(e) => {
            r.fail(
                NAME,
                format!("cannot run the write in the sandbox: {e}"),
                "see the server's log",
            );
            return;
        }
    };
    let read = format!("sha256sum {} | cut -d' ' -f1", shell_quote(&file));
    let got = envd.run(&read, &opts).await;
    let in_sandbox = match &got {
        Ok(o) if o.exit_code == 0 => String::from_utf8_lossy(&o.stdout).trim() == sum,
        _ => false,
    };
    let rm = |r: &mut Report, why: String, fix: &str| r.fail(NAME, why, fix);
    if !in_sandbox {
        rm(
            r,
            format!("{file} read back in the sandbox differs from what was written"),
            "the mount lost data: see the server's log and `bulkhead mount` of the storage",
        );
        let _ = envd
            .run(&format!("rm -f {}", shell_quote(&file)), &opts)
            .await;
        return;
    }
    // From the bucket itself; the mount uploads at close, so it should be there at once —
    // a short wait covers a background release.
    let path = format!(
        "/bulkhead/v1/sandboxes/{id}/storage?path={}",
        urlencode(&file)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        match api.call(reqwest::Method::GET, &path, None).await {
            Ok(a) if a.status == 404 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => break other,
        }
    };
    let ok = match outcome {
        Ok(a)
            if a.status == 200
                && a.body.len() == args.storage_probe_size
                && hex(&sha2::Sha256::digest(&a.body)) == sum =>
        {
            let ms = t0.elapsed().as_millis();
            r.pass(
                NAME,
                format!(
                    "{} bytes written to {file} in the sandbox read back identical there and from the bucket itself ({}) in {ms} ms",
                    args.storage_probe_size,
                    storage["bucket"].as_str().unwrap_or("?"),
                ),
            );
            true
        }
        Ok(a) if a.status == 200 => {
            rm(
                r,
                format!(
                    "the bucket's copy of {file} differs from what the sandbox wrote ({} bytes, {} written)",
                    a.body.len(),
                    args.storage_probe_size
                ),
                "the mount lost data: see the server's log",
            );
            false
        }
        Ok(a) if a.status == 409 => {
            rm(
                r,
                format!(
                    "{}: a file written there never reaches a bucket",
                    a.message()
                ),
                "start `bulkhead serve` with --storage-bucket (keys in its environment), or declare [storage] in the template's e2b.toml",
            );
            false
        }
        Ok(a) if a.status == 404 => {
            rm(
                r,
                format!(
                    "the bucket has no object for {file} 10 s after it was closed: {}",
                    a.message()
                ),
                "the mount is not uploading: see the server's log",
            );
            false
        }
        Ok(a) => {
            rm(
                r,
                format!(
                    "reading {file} from the bucket: {} {}",
                    a.status,
                    a.message()
                ),
                "check the bucket's keys and endpoint (serve's AWS_* environment or the template's --secret)",
            );
            false
        }
        Err(e) => {
            rm(
                r,
                format!("reading {file} from the bucket: {e}"),
                "see the server's log",
            );
            false
        }
    };
    // The file goes, and `executions/` too when this run made it (and it is still empty).
    let remove = format!(
        "rm -f {f}; {rmdir}true",
        f = shell_quote(&file),
        rmdir = if made_dir {
            format!(
                "rmdir {} 2>/dev/null; ",
                shell_quote(&format!("{}/executions", args.storage_path.display()))
            )
        } else {
            String::new()
        }
    );
    let _ = envd.run(&remove, &opts).await;
    if ok {
        // Removed from the bucket too.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match api.call(reqwest::Method::GET, &path, None).await {
                Ok(a) if a.status == 404 => break,
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                _ => {
                    r.fail(
                        "storage cleanup",
                        format!("{file} was removed in the sandbox but is still in the bucket after 10 s"),
                        "the mount does not delete: see the server's log",
                    );
                    break;
                }
            }
        }
    }
}
