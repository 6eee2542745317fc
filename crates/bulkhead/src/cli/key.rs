//! `bulkhead key create|list|revoke`: manage API keys directly in `<data-dir>/db.sqlite`.
//! Works while the server runs (SQLite WAL; the server sees changes on its next request).

use std::fs::DirBuilder;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use anyhow::Context;
use bulkhead_store::chrono::SecondsFormat;
use bulkhead_store::{ApiKeyInfo, DataDir, Store, Timestamp};

/// Options of `bulkhead key`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data directory; the database is <DATA_DIR>/db.sqlite.
    #[arg(
        long,
        env = "BULKHEAD_DATA_DIR",
        default_value = DataDir::DEFAULT,
        value_name = "DATA_DIR",
        global = true
    )]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// The `bulkhead key` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Create an API key; its secret is printed on stdout, this once only.
    Create {
        /// A label shown by `key list`.
        #[arg(long, default_value = "cli")]
        name: String,
        /// The team the key acts for (created if missing).
        #[arg(long, default_value = "default")]
        team: String,
    },
    /// List API keys (never their secrets).
    List,
    /// Revoke an API key: its id, its prefix (e2b_xxxxxxxx) or a unique beginning of its id.
    Revoke {
        /// The key's id or prefix.
        id: String,
    },
}

/// Runs `bulkhead key`.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let layout = DataDir::new(&args.data_dir);
    match args.command {
        KeyCommand::Create { name, team } => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(layout.root())
                .with_context(|| format!("creating {}", layout.root().display()))?;
            let store = open(&layout)?;
            let team_id = store.ensure_team(&team)?;
            let key = store.create_api_key(&team_id, &name)?;
            // A secret that cannot be delivered must not stay valid.
            let printed = writeln!(std::io::stdout(), "{}", key.secret.expose())
                .and_then(|()| std::io::stdout().flush());
            if let Err(err) = printed {
                store.revoke_api_key(&key.info.id)?;
                return Err(err).context("printing the secret (the key was revoked)");
            }
            eprintln!(
                "created API key {} ({}) for team {}; the secret above is not shown again",
                key.info.id,
                clean(&key.info.name),
                clean(&team)
            );
        }
        KeyCommand::List => {
            if !layout.db().exists() {
                eprintln!("no API keys (no database at {})", layout.db().display());
                return Ok(0);
            }
            print!("{}", table(&open(&layout)?.list_api_keys()?));
        }
        KeyCommand::Revoke { id } => {
            let revoked = layout.db().exists() && open(&layout)?.revoke_api_key(&id)?;
            if !revoked {
                anyhow::bail!("no API key matches {id:?} (see `bulkhead key list`)");
            }
            eprintln!("revoked API key {}", clean(&id));
        }
    }
    Ok(0)
}

fn open(layout: &DataDir) -> anyhow::Result<Store> {
    Store::open(&layout.db()).with_context(|| format!("opening {}", layout.db().display()))
}

/// Keeps terminal control characters in user-given labels out of the output.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn time(t: Option<&Timestamp>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// An aligned table with a header row, one key per line.
fn table(keys: &[ApiKeyInfo]) -> String {
    let mut rows = vec![
        [
            "ID",
            "NAME",
            "TEAM",
            "PREFIX",
            "CREATED",
            "LAST USED",
            "REVOKED",
        ]
        .map(str::to_owned),
    ];
    for k in keys {
        rows.push([
            k.id.clone(),
            clean(&k.name),
            clean(&k.team_name),
            format!("{}…", k.prefix),
            time(Some(&k.created_at)),
            time(k.last_used_at.as_ref()),
            time(k.revoked_at.as_ref()),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    out
}
