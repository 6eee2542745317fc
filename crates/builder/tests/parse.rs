//! The seed's template directory and a set of refused Dockerfiles, through the public API
//! only.

use std::path::{Path, PathBuf};

use bulkhead_builder::dockerfile::{self, Command, Instruction, RunMount, Sharing, expand};
use bulkhead_builder::template_dir::{
    DockerIgnore, TemplateDir, context_files, hash_sources, load_dotenv, match_sources,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn the_seed_template_directory_loads() {
    let dir = fixtures().join("seed");
    let td = TemplateDir::load(&dir, None).unwrap();
    let c = &td.config;
    assert_eq!(c.template_name.as_deref(), Some("roma-dspy-sandbox"));
    assert_eq!(c.template_id.as_deref(), Some("rk4u3cw6dl0oqmb1ewv3"));
    assert_eq!(c.start_cmd.as_deref(), Some("/home/user/start-up.sh"));
    assert_eq!(c.dockerfile, "e2b.Dockerfile");
    assert_eq!(td.dockerfile_name, "e2b.Dockerfile");
    assert_eq!(td.ignored_keys, ["team_id"]);
    let storage = c.storage.as_ref().unwrap();
    assert_eq!(storage.bucket, "${S3_BUCKET_NAME}");
    assert_eq!(storage.path, "/opt/sentient");
    assert_eq!(
        storage.access_key_secret.as_deref(),
        Some("aws_access_key_id")
    );
    assert_eq!(
        storage.secret_key_secret.as_deref(),
        Some("aws_secret_access_key")
    );

    let env = load_dotenv(&dir.join(".env")).unwrap();
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "ROMA_S3_BUCKET",
            "E2B_API_KEY"
        ]
    );
    assert_eq!(env[1].1, "not/a+real=secret");

    // The .env never reaches the context.
    let entries = td.context_files().unwrap();
    let rels: Vec<String> = entries
        .iter()
        .map(|e| e.rel.display().to_string())
        .collect();
    assert_eq!(
        rels,
        [
            "",
            ".dockerignore",
            "e2b.Dockerfile",
            "e2b.toml",
            "requirements.txt",
            "start-up.sh"
        ]
    );
    let start = match_sources(&entries, "start-up.sh").unwrap();
    assert_eq!(start[0].mode & 0o111, 0o111);
    let h = hash_sources(&dir, &entries, &["requirements.txt".to_owned()]).unwrap();
    // Spellings of the same source hash the same.
    assert_eq!(
        h,
        hash_sources(&dir, &entries, &["./requirements.txt".to_owned()]).unwrap()
    );
    assert_ne!(
        h,
        hash_sources(&dir, &entries, &["start-up.sh".to_owned()]).unwrap()
    );
}

#[test]
fn the_seed_dockerfile_parses() {
    let dir = fixtures().join("seed");
    let td = TemplateDir::load(&dir, None).unwrap();
    let df = td.dockerfile().unwrap();

    let globals: Vec<(&str, Option<&str>)> = df
        .global_args
        .iter()
        .map(|a| (a.name.as_str(), a.default.as_deref()))
        .collect();
    assert_eq!(
        globals,
        [
            ("PYTHON_VERSION", Some("3.12")),
            ("GOOFYS_VERSION", Some("0.24.0"))
        ]
    );
    assert_eq!(df.stages.len(), 2);
    let (fetch, main) = (&df.stages[0], &df.stages[1]);
    assert_eq!(fetch.name.as_deref(), Some("goofys"));
    assert_eq!(fetch.base, "python:${PYTHON_VERSION}-slim");
    assert_eq!(fetch.loc.line, 6);
    let vars = |n: &str| (n == "PYTHON_VERSION").then(|| "3.12".to_owned());
    assert_eq!(expand(&main.base, &vars).unwrap(), "python:3.12-slim");

    // ARG re-declared after FROM, without a default: it takes the global one.
    assert!(matches!(
        &fetch.steps[0].instr,
        Instruction::Arg(a) if a[0].name == "GOOFYS_VERSION" && a[0].default.is_none()
    ));
    let Instruction::Run(fetch_run) = &fetch.steps[1].instr else {
        panic!("{:?}", fetch.steps[1])
    };
    let Command::Shell(cmd) = &fetch_run.command else {
        panic!()
    };
    assert!(cmd.contains("releases/download/v${GOOFYS_VERSION}/goofys"));
    assert!(cmd.contains("ca-certificates     && curl"));

    let kinds: Vec<&str> = main
        .steps
        .iter()
        .map(|s| match &s.instr {
            Instruction::Arg(_) => "ARG",
            Instruction::Env(_) => "ENV",
            Instruction::Run(_) => "RUN",
            Instruction::Copy(_) => "COPY",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ARG", "ARG", "ENV", "RUN", "COPY", "RUN", "RUN", "COPY", "RUN", "COPY", "WORKDIR",
            "USER"
        ]
    );
    let Instruction::Env(env) = &main.steps[2].instr else {
        panic!()
    };
    assert_eq!(
        env[1],
        ("AWS_REGION".to_owned(), "${AWS_REGION}".to_owned())
    );

    let Instruction::Run(apt) = &main.steps[3].instr else {
        panic!()
    };
    let [RunMount::Cache(cache)] = apt.mounts.as_slice() else {
        panic!("{:?}", apt.mounts)
    };
    assert_eq!(
        (cache.key(), cache.sharing),
        ("/var/cache/apt", Sharing::Locked)
    );

    let Instruction::Copy(from) = &main.steps[4].instr else {
        panic!()
    };
    assert_eq!(from.from.as_deref(), Some("goofys"));
    assert_eq!(from.sources, ["/usr/local/bin/goofys"]);

    let secret_step = &main.steps[5];
    assert_eq!(secret_step.loc.line, 28);
    let Instruction::Run(secrets) = &secret_step.instr else {
        panic!()
    };
    let ids: Vec<(&str, Option<&str>, bool, u32)> = secrets
        .mounts
        .iter()
        .map(|m| match m {
            RunMount::Secret(s) => (s.id.as_str(), s.target.as_deref(), s.required, s.mode),
            RunMount::Cache(_) => panic!("{m:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        [
            (
                "aws_access_key_id",
                Some("/run/secrets/aws_access_key_id"),
                false,
                0o400
            ),
            (
                "aws_secret_access_key",
                Some("/run/secrets/aws_secret_access_key"),
                false,
                0o400
            ),
        ]
    );
    let script = secrets.shell_script().unwrap();
    assert!(script.contains("$(cat /run/secrets/aws_access_key_id)"));
    assert!(!script.contains("--mount"));

    let Instruction::Run(heredoc) = &main.steps[6].instr else {
        panic!()
    };
    assert_eq!(heredoc.command, Command::Shell(String::new()));
    assert_eq!(
        heredoc.heredocs[0].body,
        "set -e\nmkdir -p \"$STORAGE_PATH\"\necho \"user_allow_other\" >> /etc/fuse.conf\n"
    );
    assert!(main.steps[6].text.ends_with("/etc/fuse.conf\nEOF"));

    let Instruction::Copy(start) = &main.steps[9].instr else {
        panic!()
    };
    assert_eq!(start.chmod.as_deref(), Some("0755"));
    assert_eq!(start.dest, "/home/user/start-up.sh");
}

#[test]
fn refused_dockerfiles_say_where_and_why() {
    let cases = [
        (
            "healthcheck.Dockerfile",
            "healthcheck.Dockerfile:4:1: HEALTHCHECK is not supported by this builder",
        ),
        (
            "ssh-mount.Dockerfile",
            "ssh-mount.Dockerfile:3:5: RUN --mount type=ssh is not supported; supported: secret, cache",
        ),
        (
            "add-url.Dockerfile",
            "add-url.Dockerfile:2:18: ADD from a URL is not supported (https://example.com/tool); use RUN curl or wget instead",
        ),
        (
            "env-before-from.Dockerfile",
            "env-before-from.Dockerfile:3:1: ENV comes before the first FROM; only ARG may come before FROM",
        ),
        (
            "unterminated-heredoc.Dockerfile",
            "unterminated-heredoc.Dockerfile:2:21: heredoc <<'MOTD' is never terminated: no line reads MOTD",
        ),
        (
            "escape-backtick.Dockerfile",
            "escape-backtick.Dockerfile:5:6: COPY does not take the flag --mount",
        ),
        (
            "no-from.Dockerfile",
            "no-from.Dockerfile:2:1: the Dockerfile has no FROM instruction",
        ),
    ];
    for (name, want) in cases {
        let text = std::fs::read_to_string(fixtures().join("bad").join(name)).unwrap();
        let e = dockerfile::parse(name, &text).unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn dockerfile_override_and_ignore_beside_it() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("Dockerfile.dev"), "FROM scratch\nCOPY . /src\n").unwrap();
    std::fs::write(d.join("Dockerfile.dev.dockerignore"), "*.log\n").unwrap();
    std::fs::write(d.join("a.log"), "x").unwrap();
    std::fs::write(d.join("a.txt"), "x").unwrap();
    let td = TemplateDir::load(d, Some(Path::new("Dockerfile.dev"))).unwrap();
    assert_eq!(td.config.dockerfile, "Dockerfile.dev");
    let entries = context_files(d, &td.ignore).unwrap();
    assert!(entries.iter().all(|e| e.rel != Path::new("a.log")));
    let root = match_sources(&entries, ".").unwrap();
    assert!(root[0].is_root());
    assert!(DockerIgnore::parse("").patterns().is_empty());
}
