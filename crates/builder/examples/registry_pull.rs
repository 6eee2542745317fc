//! Pulls an image into an OCI layout and prints the progress as plain lines:
//!
//! ```text
//! cargo run -p bulkhead-builder --example registry_pull -- REFERENCE CACHE_DIR [USER]
//! ```
//!
//! With USER, the password is read from the `REGISTRY_PASSWORD` environment variable (never
//! from argv). Prints the manifest digest, the layout and the time taken.

use std::path::PathBuf;
use std::time::Instant;

use bulkhead_builder::registry::{self, Auth, Progress, PullOptions, Reference};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(reference), Some(cache)) = (args.next(), args.next()) else {
        eprintln!("usage: registry_pull REFERENCE CACHE_DIR [USER]");
        std::process::exit(64);
    };
    let reference = Reference::parse(&reference)?;
    let mut opts = PullOptions::default();
    if let Some(username) = args.next() {
        let password =
            std::env::var("REGISTRY_PASSWORD").map_err(|_| "USER given: set REGISTRY_PASSWORD")?;
        opts.auth = Auth::Basic { username, password };
    }
    let started = Instant::now();
    let print = |p: Progress| match p {
        Progress::Resolved {
            digest,
            layers,
            total_bytes,
        } => println!("resolved {digest}: {layers} layers, {total_bytes} bytes"),
        Progress::Blob { .. } => {}
        Progress::BlobDone { digest, cached } => {
            println!("{digest} {}", if cached { "cached" } else { "downloaded" })
        }
    };
    let pulled = registry::pull(&reference, &opts, &PathBuf::from(cache), &print).await?;
    println!(
        "pulled {} as {} into {} in {} ms",
        pulled.reference,
        pulled.manifest_digest,
        pulled.layout.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}
