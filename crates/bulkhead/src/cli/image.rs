//! `bulkhead image import|list|rm`: the server's image store, which `FROM` reads. A client
//! of the server; `import` names a path on the server's host (a root filesystem directory or
//! tarball, an OCI layout, or a docker archive: detected, not flagged).

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use serde_json::json;

use super::client::ServerArgs;

/// Manage the images that templates are built FROM.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Import a root filesystem directory or tarball, an OCI layout or a docker archive
    /// (a path on the server's host) as NAME[:TAG].
    Import {
        /// What to import.
        path: std::path::PathBuf,
        /// Name it is stored under (`FROM NAME`).
        #[arg(long, short = 'n')]
        name: String,
    },
    /// List images.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an image (layers that templates use stay).
    Rm {
        /// Image name.
        name: String,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let server = args.server.resolve()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (method, path, body) = match &args.command {
            Cmd::Import { path, name } => {
                let abs = std::fs::canonicalize(path)
                    .with_context(|| format!("{}: no such file or directory", path.display()))?;
                (
                    reqwest::Method::POST,
                    "/bulkhead/v1/images/import".to_string(),
                    Some(json!({"path": abs, "name": name})),
                )
            }
            Cmd::List { .. } => (reqwest::Method::GET, "/bulkhead/v1/images".into(), None),
            Cmd::Rm { name } => (
                reqwest::Method::DELETE,
                format!("/bulkhead/v1/images/{name}"),
                None,
            ),
        };
        let (_, v) = server.api(method, &path, body).await?;
        match args.command {
            Cmd::Import { .. } => println!(
                "imported {} ({} layers, {:.1} MiB) {}",
                v["name"].as_str().unwrap_or(""),
                v["layers"],
                v["sizeBytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
                v["manifestDigest"].as_str().unwrap_or("")
            ),
            Cmd::List { json: true } => println!("{}", serde_json::to_string_pretty(&v)?),
            Cmd::List { json: false } => {
                println!("{:<44} {:>7} {:>10}  DIGEST", "IMAGE", "LAYERS", "SIZE MB");
                for i in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<44} {:>7} {:>10.1}  {}",
                        i["name"].as_str().unwrap_or(""),
                        i["layers"],
                        i["sizeBytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
                        i["manifestDigest"].as_str().unwrap_or("")
                    );
                }
            }
            Cmd::Rm { name } => println!("removed image {name}"),
        }
        Ok(0)
    })
}
