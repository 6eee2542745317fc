//! `bulkhead key create|list|revoke` on the real binary, each test with its own data dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use bulkhead_store::{DataDir, Store};

fn key(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("key")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("BULKHEAD_DATA_DIR")
        .output()
        .expect("run bulkhead key")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn create_prints_a_working_secret_once_and_list_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = key(&data, &["create", "--name", "ci", "--team", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_owned();
    assert!(
        secret.starts_with("e2b_") && secret.len() == 44,
        "{secret:?}"
    );
    assert!(!stderr(&out).contains(&secret));

    let layout = DataDir::new(&data);
    let mode = std::fs::metadata(layout.db()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);

    let store = Store::open(&layout.db()).unwrap();
    let info = store.authenticate(&secret).unwrap().expect("the key works");
    assert_eq!(info.name, "ci");
    assert_eq!(info.team_name, "acme");
    drop(store);

    let out = key(&data, &["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(!table.contains(&secret), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    for col in [
        "ID",
        "NAME",
        "TEAM",
        "PREFIX",
        "CREATED",
        "LAST USED",
        "REVOKED",
    ] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(
        lines[1].contains(&info.id) && lines[1].contains("acme"),
        "{table}"
    );
    assert!(lines[1].contains(&secret[..11]), "{table}");
}

#[test]
fn revoke_by_id_stops_the_key_and_shows_in_list() {
    let dir = tempfile::tempdir().unwrap();
    let out = key(dir.path(), &["create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_owned();
    let id = {
        let store = Store::open(&DataDir::new(dir.path()).db()).unwrap();
        store.list_api_keys().unwrap()[0].id.clone()
    };

    let out = key(dir.path(), &["revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = Store::open(&DataDir::new(dir.path()).db()).unwrap();
    assert!(store.authenticate(&secret).unwrap().is_none());
    let out = key(dir.path(), &["list"]);
    let row = stdout(&out).lines().nth(1).unwrap_or_default().to_owned();
    assert!(!row.trim_end().ends_with('-'), "revoked time shown: {row}");
}

#[test]
fn revoking_an_unknown_id_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // Without a database, and with one that lacks the key.
    for _ in 0..2 {
        let out = key(dir.path(), &["revoke", "key_nosuchkey"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("no API key matches"), "{err}");
        assert!(key(dir.path(), &["create"]).status.success());
    }
}

#[test]
fn list_without_a_database_is_empty_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("absent");
    let out = key(&data, &["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(!data.exists());
}

#[test]
fn data_dir_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["key", "create"])
        .env("BULKHEAD_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(DataDir::new(dir.path()).db().exists());
}

#[test]
fn an_unusable_data_dir_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = key(&file, &["create"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_secret_that_cannot_be_printed_leaves_no_usable_key() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["key", "create", "--data-dir"])
        .arg(dir.path())
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    let store = Store::open(&DataDir::new(dir.path()).db()).unwrap();
    let keys = store.list_api_keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].revoked_at.is_some());
    assert!(!store.has_api_keys().unwrap());
}
