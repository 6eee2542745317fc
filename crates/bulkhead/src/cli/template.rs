//! `bulkhead template build|list|info|history|rm`: a client of the server. `build` sends the
//! template directory (minus `.dockerignore`d files and any `.env`), the build args and the
//! secrets; the server builds and streams the log back. Secret values are read here (a file
//! or an environment variable, `.env` files included, as the seed's setup.sh loaded them)
//! and travel only in the request body, never in argv, a log or the context.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use bulkhead_builder::template_dir::{self, EntryKind, TemplateDir};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Value, json};

use super::client::{Server, ServerArgs};

/// Build and manage templates on a running `bulkhead serve`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build a template directory (`e2b.toml` + Dockerfile + files), as `e2b template build`
    /// with BuildKit's `--build-arg` and `--secret`.
    Build(BuildArgs),
    /// List templates.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a template: base, layers, limits, start_cmd.
    Info {
        /// Template name or id.
        name: String,
        /// Print the whole JSON record.
        #[arg(long)]
        json: bool,
    },
    /// Show a template's history like `docker history --no-trunc`: each layer's size and
    /// the instruction that made it. Build args show as Docker shows them (which is why a
    /// secret must never be a build arg); secret values never appear.
    History {
        /// Template name or id.
        name: String,
    },
    /// Remove a template and free the layers nothing else uses.
    Rm {
        /// Template name or id.
        name: String,
        /// Remove it even while sandboxes use it (they keep running).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, ClapArgs)]
struct BuildArgs {
    /// The template directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Template name (default: `template_name` from e2b.toml, else the directory's name).
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// A build arg, `K=V`, or `K` to take the value from the environment (repeatable).
    #[arg(long = "build-arg", value_name = "K=V")]
    build_args: Vec<String>,
    /// A build secret: `id=X,src=FILE` or `id=X,env=VAR` (`id=X` alone reads $X). Repeatable.
    #[arg(long = "secret", value_name = "id=X,src=FILE|env=VAR")]
    secrets: Vec<String>,
    /// Run every step, ignoring the step cache.
    #[arg(long)]
    no_cache: bool,
    /// Read variables for `--secret env=` and `--build-arg K` from this file too (as `.env`).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// The Dockerfile, relative to the directory (default: e2b.toml's, else e2b.Dockerfile).
    #[arg(long, short = 'f')]
    dockerfile: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let server = args.server.resolve()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.command {
            Cmd::Build(b) => build(&server, b).await,
            Cmd::List { json } => list(&server, json).await,
            Cmd::Info { name, json } => info(&server, &name, json).await,
            Cmd::History { name } => history(&server, &name).await,
            Cmd::Rm { name, force } => rm(&server, &name, force).await,
        }
    })
}

/// Variables from the environment, then from `.env` in the template dir, the working dir
/// and `--env-file`s (the environment wins, as a shell that sourced `.env` then exported
/// the rest would see it).
fn variables(dir: &Path, files: &[PathBuf]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let mut paths = vec![dir.join(".env")];
    if let Ok(cwd) = std::env::current_dir()
        && cwd.join(".env") != dir.join(".env")
    {
        paths.push(cwd.join(".env"));
    }
    for p in paths.iter().filter(|p| p.is_file()).chain(files.iter()) {
        let pairs =
            template_dir::load_dotenv(p).with_context(|| format!("reading {}", p.display()))?;
        for (k, v) in pairs {
            vars.entry(k).or_insert(v);
        }
    }
    for (k, v) in std::env::vars() {
        vars.insert(k, v);
    }
    Ok(vars)
}

/// `id=X,src=FILE` / `id=X,env=VAR` / `id=X` into (id, value).
pub(crate) fn secret(
    spec: &str,
    vars: &BTreeMap<String, String>,
) -> anyhow::Result<(String, Vec<u8>)> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => bail!("--secret {spec:?}: expected id=X,src=FILE or id=X,env=VAR"),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--secret {spec:?}: missing id="))?;
    let value = match (src, env) {
        (Some(f), None) => std::fs::read(&f)
            .with_context(|| format!("--secret id={id}: reading {}", f.display()))?,
        (None, Some(v)) => vars
            .get(&v)
            .with_context(|| format!("--secret id={id}: ${v} is not set (nor in .env)"))?
            .clone()
            .into_bytes(),
        (None, None) => vars
            .get(&id)
            .with_context(|| {
                format!("--secret id={id}: give src=FILE or env=VAR (${id} is not set)")
            })?
            .clone()
            .into_bytes(),
        (Some(_), Some(_)) => bail!("--secret id={id}: give src= or env=, not both"),
    };
    Ok((id, value))
}

/// The context as a gzip tar in an unnamed temporary file (a large template directory is
/// never held in memory, here or on the server): every file the `.dockerignore` lets
/// through, plus the files the build itself reads; never a `.env` (it holds the seed's
/// credentials). Returns the file (at its start), its size and the number of entries.
fn context_tar(td: &TemplateDir) -> anyhow::Result<(std::fs::File, u64, usize)> {
    let entries = template_dir::context_files(&td.dir, &td.ignore)?;
    let file = tempfile::tempfile().context("creating a temporary file for the build context")?;
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut n = 0;
    let mut added = std::collections::BTreeSet::new();
    let must: Vec<PathBuf> = ["e2b.toml", ".dockerignore"]
        .iter()
        .map(PathBuf::from)
        .chain(
            td.dockerfile_path
                .strip_prefix(&td.dir)
                .ok()
                .map(Path::to_path_buf),
        )
        .collect();
    let all = entries
        .iter()
        .filter(|e| !e.rel.as_os_str().is_empty())
        .map(|e| (e.rel.clone(), e.kind == EntryKind::Dir))
        .chain(
            must.iter()
                .filter(|m| td.dir.join(m).is_file())
                .map(|m| (m.clone(), false)),
        );
    for (rel, is_dir) in all {
        if rel.file_name().is_some_and(|n| n == ".env") || !added.insert(rel.clone()) {
            continue;
        }
        let path = td.dir.join(&rel);
        if is_dir {
            tar.append_dir(&rel, &path)
        } else {
            tar.append_path_with_name(&path, &rel)
        }
        .with_context(|| format!("adding {} to the build context", path.display()))?;
        n += 1;
    }
    let gz = tar.into_inner().context("finishing the build context")?;
    let mut file = gz
        .finish()
        .context("compressing the build context")?
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the build context")?;
    use std::io::Seek as _;
    let len = file
        .seek(std::io::SeekFrom::End(0))
        .context("sizing the build context")?;
    file.rewind().context("rewinding the build context")?;
    Ok((file, len, n))
}

async fn build(server: &Server, b: BuildArgs) -> anyhow::Result<u8> {
    let dockerfile = b.dockerfile.as_ref().map(|f| b.dir.join(f));
    let td = TemplateDir::load(&b.dir, dockerfile.as_deref())?;
    let vars = variables(&b.dir, &b.env_file)?;
    let name = b
        .name
        .clone()
        .or_else(|| td.config.template_name.clone())
        .or_else(|| {
            std::fs::canonicalize(&b.dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        })
        .context("give the template a name with --name")?;
    let mut args = Vec::new();
    for a in &b.build_args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => args.push((k.to_string(), v.to_string())),
            None if !a.is_empty() => match vars.get(a) {
                Some(v) => args.push((a.clone(), v.clone())),
                None => {
                    eprintln!("note: --build-arg {a}: ${a} is not set; the ARG keeps its default")
                }
            },
            _ => bail!("invalid --build-arg {a:?}: expected K=V or K"),
        }
    }
    let mut secrets = BTreeMap::new();
    for s in &b.secrets {
        let (id, value) = secret(s, &vars)?;
        secrets.insert(id, base64::engine::general_purpose::STANDARD.encode(value));
    }
    if td.dir.join(".env").is_file() {
        eprintln!(
            "note: {} is read for variables and never sent to the server",
            td.dir.join(".env").display()
        );
    }
    let (context, context_len, files) = context_tar(&td)?;
    let rel_dockerfile = td
        .dockerfile_path
        .strip_prefix(&td.dir)
        .ok()
        .map(|p| p.display().to_string());
    let params = json!({
        "name": name,
        "args": args,
        "secrets": secrets,
        "noCache": b.no_cache,
        "dockerfile": rel_dockerfile,
    });
    eprintln!(
        "building template {name} from {} ({files} files, {:.1} KiB context) on {}",
        td.dir.display(),
        context_len as f64 / 1024.0,
        server.url
    );
    let form = reqwest::multipart::Form::new()
        .part(
            "params",
            reqwest::multipart::Part::bytes(serde_json::to_vec(&params)?),
        )
        .part(
            "context",
            reqwest::multipart::Part::stream_with_length(
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(
                    tokio::fs::File::from_std(context),
                )),
                context_len,
            ),
        );
    let res = reqwest::Client::new()
        .post(format!("{}/bulkhead/v1/builds", server.url))
        .header("x-api-key", &server.key)
        .multipart(form)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {}", server.url))?;
    let status = res.status();
    if !status.is_success() {
        let text = res.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(text);
        bail!("server answered {}: {msg}", status.as_u16());
    }
    let tty = std::io::stderr().is_terminal();
    let mut stream = res.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut outcome: Option<Value> = None;
    use futures_util::StreamExt as _;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the build log stream broke off")?;
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            match ev.get("type").and_then(Value::as_str) {
                Some("built" | "failed") => outcome = Some(ev),
                _ => show(&ev, tty),
            }
        }
    }
    match outcome {
        Some(ev) if ev["type"] == "built" => {
            let t = &ev["template"];
            println!(
                "built template {} ({} layers, {:.1} MiB; {} steps run, {} cached) from {}",
                t["name"].as_str().unwrap_or(""),
                t["layers"],
                t["sizeBytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
                t["stepsRun"],
                t["stepsCached"],
                t["base"].as_str().unwrap_or("")
            );
            println!(
                "use it: Sandbox.create(\"{}\")",
                t["name"].as_str().unwrap_or("")
            );
            Ok(0)
        }
        Some(ev) => {
            eprintln!(
                "build failed: {}",
                ev["message"].as_str().unwrap_or("unknown error")
            );
            Ok(1)
        }
        None => {
            eprintln!("build failed: the server closed the log before the build ended");
            Ok(1)
        }
    }
}

/// One event, as a line of the build log.
fn show(ev: &Value, tty: bool) {
    let mut err = std::io::stderr().lock();
    let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("");
    let line = match ev.get("type").and_then(Value::as_str) {
        Some("step") if ev["total"] == 0 => format!("[{}] {}", s("stage"), s("text")),
        Some("step") => format!("[{}/{}] {}", ev["index"], ev["total"], s("text")),
        Some("cached") => "  cached".into(),
        Some("done") => {
            let bytes = ev["layer_bytes"].as_u64().unwrap_or(0);
            let ms = ev["millis"].as_u64().unwrap_or(0);
            if bytes > 0 {
                format!(
                    "  done in {:.2} s, layer {:.1} MiB",
                    ms as f64 / 1000.0,
                    bytes as f64 / 1_048_576.0
                )
            } else {
                format!("  done in {:.2} s", ms as f64 / 1000.0)
            }
        }
        Some("output") => format!("  | {}", s("line")),
        Some("note") => format!("  note: {}", s("message")),
        _ => return,
    };
    let _ = if tty && ev["type"] == "step" {
        writeln!(err, "\x1b[1m{line}\x1b[0m")
    } else {
        writeln!(err, "{line}")
    };
}

async fn get(server: &Server, path: &str) -> anyhow::Result<Value> {
    Ok(server.api(reqwest::Method::GET, path, None).await?.1)
}

async fn list(server: &Server, as_json: bool) -> anyhow::Result<u8> {
    let v = get(server, "/templates").await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "{:<28} {:<28} {:>5} {:>8} {:<20}",
        "TEMPLATE", "ALIASES", "CPU", "MEM MB", "UPDATED"
    );
    for t in v.as_array().into_iter().flatten() {
        let aliases: Vec<&str> = t["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<28} {:<28} {:>5} {:>8} {:<20}",
            t["templateID"].as_str().unwrap_or(""),
            aliases.join(","),
            t["cpuCount"],
            t["memoryMB"],
            t["updatedAt"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("(built in)")
        );
    }
    Ok(0)
}

async fn info(server: &Server, name: &str, as_json: bool) -> anyhow::Result<u8> {
    let v = get(server, &format!("/bulkhead/v1/templates/{name}")).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let b = &v["built"];
    let size: u64 = b["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["size"].as_u64())
        .sum();
    println!("template   {}", v["id"].as_str().unwrap_or(""));
    println!("name       {}", b["name"].as_str().unwrap_or(""));
    println!("base       {}", b["base"].as_str().unwrap_or(""));
    println!(
        "layers     {} ({:.1} MiB)",
        b["layers"].as_array().map_or(0, Vec::len),
        size as f64 / 1_048_576.0
    );
    println!("start_cmd  {}", b["start_cmd"].as_str().unwrap_or("-"));
    println!("ready_cmd  {}", b["ready_cmd"].as_str().unwrap_or("-"));
    println!("service    {}", b["service"]);
    println!("cpu_count  {}", b["cpu_count"]);
    println!("memory_mb  {}", b["memory_mb"]);
    println!("digest     {}", b["manifest_digest"].as_str().unwrap_or(""));
    println!(
        "built      {} (builds: {})",
        v["updatedAt"].as_str().unwrap_or(""),
        v["buildCount"]
    );
    Ok(0)
}

async fn history(server: &Server, name: &str) -> anyhow::Result<u8> {
    let v = get(server, &format!("/bulkhead/v1/templates/{name}")).await?;
    let b = &v["built"];
    let layers: Vec<&Value> = b["layers"].as_array().into_iter().flatten().collect();
    let hist: Vec<&Value> = b["config"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    // Layers go with the history entries that are not empty, in order (Docker's pairing).
    let mut sizes = Vec::with_capacity(hist.len());
    let mut li = layers.iter();
    for h in &hist {
        if h["empty_layer"].as_bool().unwrap_or(false) {
            sizes.push(0);
        } else {
            sizes.push(li.next().and_then(|l| l["size"].as_u64()).unwrap_or(0));
        }
    }
    println!("{:<22} {:>10}  CREATED BY", "CREATED", "SIZE");
    for (h, size) in hist.iter().zip(sizes).rev() {
        println!(
            "{:<22} {:>10}  {}",
            h["created"].as_str().unwrap_or(""),
            human(size),
            h["created_by"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}

fn human(b: u64) -> String {
    match b {
        0 => "0B".into(),
        b if b < 1 << 10 => format!("{b}B"),
        b if b < 1 << 20 => format!("{:.1}kB", b as f64 / 1024.0),
        b if b < 1 << 30 => format!("{:.1}MB", b as f64 / 1_048_576.0),
        b => format!("{:.2}GB", b as f64 / 1_073_741_824.0),
    }
}

async fn rm(server: &Server, name: &str, force: bool) -> anyhow::Result<u8> {
    let path = format!("/templates/{name}?force={force}");
    server.api(reqwest::Method::DELETE, &path, None).await?;
    println!("removed template {name}");
    Ok(0)
}
