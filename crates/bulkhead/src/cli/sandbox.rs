//! `bulkhead sandbox create|list|exec|kill`: manage sandboxes of a running server, for
//! people (agents use the E2B SDKs).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use bulkhead_envd::AccessToken;
use bulkhead_envd::client::{EnvdClient, RunOptions};
use clap::{Args as ClapArgs, Subcommand};

use super::client::{Server, ServerArgs};

/// Manage sandboxes on a running `bulkhead serve`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a sandbox and print its id.
    Create {
        /// Template name or id.
        #[arg(long, short = 't', default_value = "base")]
        template: String,
        /// Seconds until the sandbox is killed.
        #[arg(long)]
        timeout: Option<i64>,
        /// Environment variable for every process in the sandbox (repeatable).
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Metadata (repeatable).
        #[arg(short = 'm', long = "metadata", value_name = "K=V")]
        metadata: Vec<String>,
        /// Print the whole JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List sandboxes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a sandbox (through bash) and pass its output and exit code through.
    Exec {
        /// Sandbox id.
        id: String,
        /// User inside the sandbox.
        #[arg(long, short = 'u')]
        user: Option<String>,
        /// Working directory.
        #[arg(long, short = 'w')]
        cwd: Option<String>,
        /// The command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Kill a sandbox.
    Kill {
        /// Sandbox id.
        id: String,
    },
}

fn pairs(what: &str, list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("invalid {what} {kv:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let server = args.server.resolve()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(server, args.command))
}

async fn run_async(server: Server, cmd: Cmd) -> anyhow::Result<u8> {
    match cmd {
        Cmd::Create {
            template,
            timeout,
            env,
            metadata,
            json,
        } => {
            let mut body = serde_json::json!({"templateID": template, "envVars": pairs("env", &env)?, "metadata": pairs("metadata", &metadata)?});
            if let Some(t) = timeout {
                body["timeout"] = t.into();
            }
            let (_, v) = server
                .api(reqwest::Method::POST, "/v2/sandboxes", Some(body))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", v["sandboxID"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        Cmd::List { json } => {
            let (_, v) = server
                .api(reqwest::Method::GET, "/v2/sandboxes", None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            println!(
                "{:<22} {:<12} {:<8} {:<22} {:<22}",
                "SANDBOX", "TEMPLATE", "STATE", "STARTED", "ENDS"
            );
            for s in v.as_array().into_iter().flatten() {
                let f = |k: &str| s[k].as_str().unwrap_or("").to_string();
                println!(
                    "{:<22} {:<12} {:<8} {:<22} {:<22}",
                    f("sandboxID"),
                    f("templateID"),
                    f("state"),
                    f("startedAt"),
                    f("endAt")
                );
            }
            Ok(0)
        }
        Cmd::Exec {
            id,
            user,
            cwd,
            command,
        } => {
            let (_, detail) = server
                .api(reqwest::Method::GET, &format!("/sandboxes/{id}"), None)
                .await?;
            let token = detail["envdAccessToken"]
                .as_str()
                .map(|t| AccessToken::new(t.to_string()));
            let envd = EnvdClient::new(&server.url, token).via_proxy(&id);
            let script = command
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ");
            let opts = RunOptions {
                user,
                cwd,
                envs: BTreeMap::new(),
                timeout: None,
            };
            let out = envd
                .run(&script, &opts)
                .await
                .context("running the command")?;
            use std::io::Write;
            std::io::stdout().write_all(&out.stdout)?;
            std::io::stderr().write_all(&out.stderr)?;
            Ok(out.exit_code.clamp(0, 255) as u8)
        }
        Cmd::Kill { id } => {
            server
                .api(reqwest::Method::DELETE, &format!("/sandboxes/{id}"), None)
                .await?;
            println!("killed {id}");
            Ok(0)
        }
    }
}

/// Quotes one argument for bash.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
