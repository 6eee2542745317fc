//! Data survives closing and reopening the database file, through the public API only.

use bulkhead_store::{DataDir, SandboxRecord, SandboxStatus, Secret, Store};

#[test]
fn reopen_after_close_keeps_teams_keys_and_sandboxes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataDir::new(dir.path());
    let (team, key, rec) = {
        let store = Store::open(&layout.db()).unwrap();
        let team = store.ensure_team("default").unwrap();
        let key = store.create_api_key(&team, "first").unwrap();
        let started_at = bulkhead_store::now();
        let rec = SandboxRecord {
            sandbox_id: "i1abc".into(),
            team_id: team.clone(),
            template_id: "base".into(),
            alias: Some("base".into()),
            started_at,
            end_at: started_at + bulkhead_store::chrono::Duration::seconds(300),
            status: SandboxStatus::Paused,
            metadata: [("k".to_owned(), "v".to_owned())].into(),
            envd_access_token: Secret::new("token"),
            cpu_count: 1,
            memory_mb: 256,
            disk_mb: 512,
            idempotency_key: Some("req-1".into()),
            auto_pause: true,
            auto_pause_memory: false,
        };
        store.insert_sandbox(&rec).unwrap();
        (team, key, rec)
    };

    let store = Store::open(&layout.db()).unwrap();
    assert_eq!(store.ensure_team("default").unwrap(), team);
    let info = store.authenticate(key.secret.expose()).unwrap().unwrap();
    assert_eq!(info.id, key.info.id);
    assert!(store.has_api_keys().unwrap());
    assert_eq!(store.all_sandboxes().unwrap(), vec![rec.clone()]);
    assert_eq!(
        store.find_by_idempotency_key(&team, "req-1").unwrap(),
        Some(rec.clone())
    );
    assert_eq!(store.get_sandbox("i1abc").unwrap(), Some(rec));
}

#[test]
fn a_second_handle_on_the_same_file_sees_writes() {
    // The CLI opens the database while the server has it open.
    let dir = tempfile::tempdir().unwrap();
    let path = DataDir::new(dir.path()).db();
    let server = Store::open(&path).unwrap();
    let cli = Store::open(&path).unwrap();
    let team = cli.ensure_team("default").unwrap();
    let key = cli.create_api_key(&team, "from the cli").unwrap();
    assert!(server.authenticate(key.secret.expose()).unwrap().is_some());
    assert!(cli.revoke_api_key(&key.info.id).unwrap());
    assert!(server.authenticate(key.secret.expose()).unwrap().is_none());
}

#[test]
fn clones_share_one_database_across_threads() {
    let store = Store::open_in_memory().unwrap();
    let team = store.ensure_team("default").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            let team = team.clone();
            std::thread::spawn(move || {
                for j in 0..10 {
                    store.create_api_key(&team, &format!("{i}-{j}")).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.list_api_keys().unwrap().len(), 40);
}
