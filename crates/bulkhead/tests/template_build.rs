//! `bulkhead template build` against a real `bulkhead serve`, as a user runs it: a template
//! directory in E2B's format, built with build args and BuildKit secrets, served to real
//! sandboxes. The base is the repo's Debian root filesystem, imported as `bulkhead/debian`
//! by the first build of each server (about 8 s); the builds themselves take seconds.
//!
//! The canary test is the proof the issue asks for: a unique secret used every way people
//! use one, then every byte the build produced (blobs, layers, config, history, cache index,
//! snapshot, data dir, server log, build log) and every process and file of a running
//! sandbox is searched for it.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Serve {
    child: Child,
    url: String,
    key: String,
    data: PathBuf,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path) -> Self {
        let data = dir.join("data");
        let log = dir.join("serve.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "1"])
            .arg("--base-rootfs")
            .arg(common::rootfs("debian"))
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(&log).unwrap());
        let (child, url, key) = common::start_serve(cmd, &data);
        Self {
            child,
            url,
            key,
            data,
            log,
        }
    }

    /// `bulkhead <group> ARGS` as a client of this server, with `envs` set.
    fn cli(&self, group: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.arg(group)
            .args(["--server", &self.url, "--data-dir", "/nonexistent"])
            .args(args)
            .env("E2B_API_KEY", &self.key)
            .env_remove("E2B_API_URL")
            .stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn build(&self, dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut args = vec!["build", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.cli("template", &args, envs)
    }

    fn sandbox(&self, template: &str) -> String {
        let o = self.cli("sandbox", &["create", "-t", template], &[]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn exec(&self, id: &str, script: &str) -> String {
        let o = self.cli("sandbox", &["exec", id, "--", "sh", "-c", script], &[]);
        assert!(o.status.success(), "{script}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

const DOCKERFILE: &str = r#"ARG BASE=bulkhead/debian
FROM ${BASE} AS base
ARG GREETING=hello
ENV APP_HOME=/opt/app
WORKDIR /opt/app
COPY conf/ ./conf/
COPY start-up.sh /usr/local/bin/start-up.sh
RUN echo "${GREETING} from $APP_HOME" > greeting && chmod 755 /usr/local/bin/start-up.sh
RUN <<EOF
mkdir -p /opt/app/made
echo heredoc > /opt/app/made/by-heredoc
EOF

FROM base
COPY --from=base /opt/app/greeting /opt/copied-greeting
COPY <<EOF /opt/app/from-heredoc
home=$APP_HOME
EOF
USER user
"#;

#[test]
fn a_template_directory_builds_caches_and_serves_sandboxes() {
    let t = tempfile::tempdir().unwrap();
    let srv = Serve::start(t.path());
    let dir = t.path().join("tpl");
    write(
        &dir,
        &[
            (
                "e2b.toml",
                "team_id = \"ignored\"\ntemplate_name = \"demo\"\ndockerfile = \"e2b.Dockerfile\"\nstart_cmd = \"/usr/local/bin/start-up.sh\"\ncpu_count = 1\nmemory_mb = 768\n",
            ),
            ("e2b.Dockerfile", DOCKERFILE),
            ("conf/app.conf", "key = value\n"),
            ("conf/local.secret", "not for the image\n"),
            (".dockerignore", "conf/*.secret\n"),
            (
                "start-up.sh",
                "#!/bin/sh\necho once >> /opt/app/start.log\necho started\n",
            ),
        ],
    );
    let o = srv.build(&dir, &["--build-arg", "GREETING=hi"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("team_id is not used by Bulkhead"), "{log}");
    assert!(log.contains("[start_cmd] started"), "{log}");
    assert!(log.contains("never runs again"), "{log}");

    // Nothing changed: every step comes from the cache.
    let o = srv.build(&dir, &["--build-arg", "GREETING=hi"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("0 steps run"),
        "{}",
        text(&o)
    );
    // A changed input runs again from the step it reaches, and the layers it replaced are
    // freed (no sandbox runs on them): rebuilding does not pile up copies of a template.
    let layers = |srv: &Serve| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(srv.data.join("images/layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = layers(&srv);
    write(&dir, &[("conf/app.conf", "key = other\n")]);
    let o = srv.build(&dir, &["--build-arg", "GREETING=hi"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("0 steps run"));
    let after = layers(&srv);
    let added = after.difference(&before).count();
    let removed = before.difference(&after).count();
    assert!(added > 0, "the rebuild made new layers");
    assert_eq!(
        removed, added,
        "the replaced layers are freed: {before:?} -> {after:?}"
    );

    // Three sandboxes: start_cmd ran once, at build time, and each sees exactly one line.
    let ids: Vec<String> = (0..3).map(|_| srv.sandbox("demo")).collect();
    for id in &ids {
        assert_eq!(srv.exec(id, "cat /opt/app/start.log"), "once\n");
    }
    let id = &ids[0];
    assert_eq!(srv.exec(id, "cat /opt/app/greeting"), "hi from /opt/app\n");
    assert_eq!(
        srv.exec(id, "cat /opt/copied-greeting"),
        "hi from /opt/app\n"
    );
    assert_eq!(srv.exec(id, "cat /opt/app/made/by-heredoc"), "heredoc\n");
    assert_eq!(srv.exec(id, "cat /opt/app/from-heredoc"), "home=/opt/app\n");
    assert_eq!(srv.exec(id, "cat /opt/app/conf/app.conf"), "key = other\n");
    assert_eq!(srv.exec(id, "echo $APP_HOME"), "/opt/app\n");
    assert_eq!(
        srv.exec(
            id,
            "test -e /opt/app/conf/local.secret && echo present || echo absent"
        ),
        "absent\n"
    );
    assert_eq!(
        srv.exec(id, "test -e /run/secrets && echo present || echo absent"),
        "absent\n"
    );

    // The template commands.
    let o = srv.cli("template", &["list", "--json"], &[]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let demo = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["templateID"] == "demo")
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    // cpu_count and memory_mb of e2b.toml are the template's sandbox limits.
    assert_eq!(
        (demo["cpuCount"].as_u64(), demo["memoryMB"].as_u64()),
        (Some(1), Some(768))
    );
    let o = srv.cli("template", &["history", "demo"], &[]);
    let hist = String::from_utf8_lossy(&o.stdout);
    assert!(hist.contains("RUN |1 GREETING=hi"), "{hist}");
    assert!(
        hist.contains("start_cmd /usr/local/bin/start-up.sh"),
        "{hist}"
    );
    let o = srv.cli("template", &["rm", "demo"], &[]);
    assert!(!o.status.success(), "removed while in use: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("running sandbox"));
    for id in &ids {
        let o = srv.cli("sandbox", &["kill", id], &[]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = srv.cli("template", &["rm", "demo"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = srv.cli("sandbox", &["create", "-t", "demo"], &[]);
    assert!(!o.status.success());
}

#[test]
fn a_start_cmd_still_running_at_ready_is_started_again_in_every_sandbox() {
    let t = tempfile::tempdir().unwrap();
    let srv = Serve::start(t.path());
    let dir = t.path().join("svc");
    write(
        &dir,
        &[
            (
                "e2b.toml",
                "template_name = \"svc\"\nstart_cmd = \"echo up > /tmp/ready; exec sleep 100000\"\nready_cmd = \"test -f /tmp/ready\"\n",
            ),
            (
                "e2b.Dockerfile",
                "FROM bulkhead/debian\nRUN echo built > /built\n",
            ),
        ],
    );
    let o = srv.build(&dir, &[], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("it is a service"),
        "{}",
        text(&o)
    );
    let id = srv.sandbox("svc");
    let ps = srv.exec(&id, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '");
    assert!(ps.contains("sleep 100000"), "{ps}");
    // /tmp is not part of the snapshot: the file is the service's own, made again.
    assert_eq!(srv.exec(&id, "cat /tmp/ready"), "up\n");
}

#[test]
fn a_build_secret_is_nowhere_after_the_build() {
    let t = tempfile::tempdir().unwrap();
    let srv = Serve::start(t.path());
    let canary = format!("canary-{:032x}", rand::random::<u128>());
    let dir = t.path().join("sec");
    let secret_file = t.path().join("secret.txt");
    std::fs::write(&secret_file, &canary).unwrap();
    let dockerfile = r#"FROM bulkhead/debian
# cat it to a file, use it, delete it
RUN --mount=type=secret,id=canary cp /run/secrets/canary /tmp/k && wc -c /tmp/k && rm /tmp/k
# print it
RUN --mount=type=secret,id=canary,required=true cat /run/secrets/canary
# as a pip config at a target of its own
RUN --mount=type=secret,id=canary,target=/root/.config/pip/pip.conf cat /root/.config/pip/pip.conf
# export it
RUN --mount=type=secret,id=canary export TOKEN=$(cat /run/secrets/canary) && echo "token $TOKEN"
# as an environment variable only
RUN --mount=type=secret,id=canary,env=CANARY sh -c 'test -n "$CANARY" && echo "env $CANARY" && test ! -e /run/secrets/canary'
# its id and target named by build variables, expanded as BuildKit does
ARG SECRET_ID=canary
ENV CONF_DIR=/root/.config/tool
RUN --mount=type=secret,id=${SECRET_ID},target=$CONF_DIR/token,required=true cat /root/.config/tool/token
RUN echo done > /done
"#;
    write(
        &dir,
        &[
            (
                "e2b.toml",
                "template_name = \"sec\"\nstart_cmd = \"echo snapshot > /snap\"\n",
            ),
            ("e2b.Dockerfile", dockerfile),
            (".env", &format!("CANARY_FROM_DOTENV={canary}\n")),
        ],
    );
    let src = format!("id=canary,src={}", secret_file.display());
    let o = srv.build(
        &dir,
        &[
            "--secret",
            &src,
            "--build-arg",
            "AWS_SECRET_ACCESS_KEY=AKIAIOSFODNN7EXAMPLE",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("token ****"), "{out}");
    assert!(out.contains("env ****"), "{out}");
    assert!(out.contains("pass it with --secret"), "{out}");
    assert!(
        !out.contains(&canary),
        "the build log holds the secret: {out}"
    );

    // The same secret from .env (env=), as the seed's setup.sh passed it.
    let o = srv.build(
        &dir,
        &["--secret", "id=canary,env=CANARY_FROM_DOTENV", "--no-cache"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(&canary));

    let id = srv.sandbox("sec");
    assert_eq!(srv.exec(&id, "cat /done /snap"), "done\nsnapshot\n");
    // Nowhere on the host the server wrote to: blobs, unpacked layers, configs and history,
    // the step cache, the snapshot, template records, the database, the server log.
    let hits = common::files_containing(&srv.data, canary.as_bytes());
    assert!(hits.is_empty(), "the secret is in {hits:?}");
    let log = std::fs::read(&srv.log).unwrap();
    assert!(!log.windows(canary.len()).any(|w| w == canary.as_bytes()));
    // Nor in the running sandbox: its files, and every process's environment and argv. The
    // search must not carry the canary in its own argv: the needle is put together by the
    // shell into a file under /dev (which the search skips) and grep reads it from there.
    let (head, tail) = canary.split_at(6);
    let found = srv.exec(
        &id,
        &format!(
            "a={head}; b={tail}; printf %s%s \"$a\" \"$b\" > /dev/shm/needle; \
             grep -rlF -f /dev/shm/needle / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null; \
             for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; done | grep -cF -f /dev/shm/needle; true"
        ),
    );
    assert_eq!(found.trim(), "0", "the sandbox holds the secret: {found}");
    // No process on the host holds it in its environment or argv.
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        for f in ["environ", "cmdline"] {
            if let Ok(b) = std::fs::read(e.path().join(f)) {
                assert!(
                    !b.windows(canary.len()).any(|w| w == canary.as_bytes()),
                    "{} holds the secret",
                    e.path().join(f).display()
                );
            }
        }
    }
    // Secret files existed only while their step ran.
    for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with("bulkhead-secrets-")
        {
            assert!(common::files_containing(&e.path(), canary.as_bytes()).is_empty());
        }
    }

    // A step that keeps the secret in its layer fails the build, names the step, and leaves
    // nothing behind.
    write(
        &dir,
        &[(
            "e2b.Dockerfile",
            "FROM bulkhead/debian\nRUN --mount=type=secret,id=canary cp /run/secrets/canary /kept\n",
        )],
    );
    let o = srv.build(&dir, &["--secret", &src, "--name", "leaky"], &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("e2b.Dockerfile:2"), "{out}");
    assert!(
        out.contains("contains the value of secret \"canary\""),
        "{out}"
    );
    let hits = common::files_containing(&srv.data, canary.as_bytes());
    assert!(hits.is_empty(), "the refused layer is still in {hits:?}");
    assert!(
        !srv.cli("sandbox", &["create", "-t", "leaky"], &[])
            .status
            .success()
    );
}

#[test]
fn bad_template_directories_fail_with_the_step_and_register_nothing() {
    let t = tempfile::tempdir().unwrap();
    let srv = Serve::start(t.path());
    // (name, files, extra build flags, what the error must say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: &[Case<'_>] = &[
        (
            "nodockerfile",
            &[("e2b.toml", "template_name = \"a\"\n")],
            &[],
            "Dockerfile",
        ),
        (
            "syntax",
            &[(
                "e2b.Dockerfile",
                "FROM bulkhead/debian\nHEALTHCHECK CMD true\n",
            )],
            &[],
            "e2b.Dockerfile:2:1",
        ),
        (
            "failing",
            &[(
                "e2b.Dockerfile",
                "FROM bulkhead/debian\nRUN echo about to fail && exit 3\n",
            )],
            &[],
            "about to fail",
        ),
        (
            "secret",
            &[(
                "e2b.Dockerfile",
                "FROM bulkhead/debian\nRUN --mount=type=secret,id=token,required=true true\n",
            )],
            &[],
            "secret \"token\" is required",
        ),
        (
            "outside",
            &[(
                "e2b.Dockerfile",
                "FROM bulkhead/debian\nCOPY ../../etc/passwd /x\n",
            )],
            &[],
            "outside",
        ),
        (
            "startcmd",
            &[
                ("e2b.Dockerfile", "FROM bulkhead/debian\n"),
                ("e2b.toml", "start_cmd = \"echo broken setup; exit 7\"\n"),
            ],
            &[],
            "broken setup",
        ),
        (
            "nobase",
            &[("e2b.Dockerfile", "FROM no-such-image-here.invalid/x:1\n")],
            &[],
            "no-such-image-here.invalid",
        ),
    ];
    for (name, files, args, expect) in cases {
        let dir = t.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, files);
        let mut a = vec!["--name", name];
        a.extend_from_slice(args);
        let o = srv.build(&dir, &a, &[]);
        assert!(!o.status.success(), "{name} built: {}", text(&o));
        assert!(
            text(&o).contains(expect),
            "{name}: expected {expect:?} in {}",
            text(&o)
        );
        assert!(
            !srv.cli("sandbox", &["create", "-t", name], &[])
                .status
                .success(),
            "{name} was registered"
        );
    }
}

#[test]
fn an_imported_image_is_listed_built_from_and_removed() {
    let t = tempfile::tempdir().unwrap();
    let srv = Serve::start(t.path());
    let busybox = common::rootfs("busybox");
    let o = srv.cli(
        "image",
        &["import", busybox.to_str().unwrap(), "--name", "tiny:1"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = srv.cli("image", &["list"], &[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("tiny:1"),
        "{}",
        text(&o)
    );
    let dir = t.path().join("fromtiny");
    write(
        &dir,
        &[(
            "e2b.Dockerfile",
            "FROM tiny:1\nRUN echo built-on-tiny > /marker\n",
        )],
    );
    let o = srv.build(&dir, &["--name", "fromtiny"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = srv.cli("template", &["info", "fromtiny"], &[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("tiny:1@sha256:"),
        "{}",
        text(&o)
    );
    let o = srv.cli("image", &["rm", "tiny:1"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = srv.cli("image", &["rm", "tiny:1"], &[]);
    assert!(!o.status.success());
    // FROM now names an image that is gone: the build fails and names it.
    let o = srv.build(&dir, &["--name", "fromtiny"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("tiny:1"), "{}", text(&o));
}

#[test]
fn a_second_build_of_the_same_template_is_refused_while_the_first_runs() {
    let t = tempfile::tempdir().unwrap();
    let srv = Serve::start(t.path());
    let dir = t.path().join("slow");
    write(
        &dir,
        &[
            ("e2b.toml", "template_name = \"slow\"\n"),
            (
                "e2b.Dockerfile",
                "FROM bulkhead/debian\nRUN sleep 6 && echo slept > /slept\n",
            ),
        ],
    );
    let mut first = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.args(["template", "build"])
            .arg(&dir)
            .args(["--server", &srv.url, "--data-dir", "/nonexistent"])
            .env("E2B_API_KEY", &srv.key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    // Wait until the first build is in its RUN step (its log says so), then try a second.
    use std::io::BufRead;
    let mut log = std::io::BufReader::new(first.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            log.read_line(&mut line).unwrap() > 0,
            "the first build ended before its RUN step: {seen}"
        );
        seen.push_str(&line);
        if line.contains("RUN sleep 6") {
            break;
        }
    }
    let second = srv.build(&dir, &[], &[]);
    assert!(!second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("already being built"),
        "{}",
        text(&second)
    );
    let rest = std::thread::spawn(move || {
        let mut r = String::new();
        let _ = std::io::Read::read_to_string(&mut log, &mut r);
        r
    });
    let status = first.wait().unwrap();
    let rest = rest.join().unwrap();
    assert!(status.success(), "{seen}{rest}");
    // The first build's result is whole and served.
    let id = srv.sandbox("slow");
    assert_eq!(srv.exec(&id, "cat /slept"), "slept\n");
}

/// ADD of a local tar archive unpacks it, as Docker does (plain, gzip and zstd); a file that
/// is no archive is copied; an archive entry that would leave its destination fails the
/// build naming the step.
#[test]
fn add_unpacks_local_tar_archives() {
    let t = tempfile::tempdir().unwrap();
    let srv = Serve::start(t.path());
    let dir = t.path().join("adds");
    let tree = t.path().join("tree");
    write(
        &tree,
        &[
            ("pkg/bin/tool", "#!/bin/sh\necho tool\n"),
            ("pkg/README", "read me\n"),
        ],
    );
    std::fs::set_permissions(
        tree.join("pkg/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let tar = |args: &[&str], out: &str| {
        let o = Command::new("tar")
            .args(args)
            .arg(dir.join(out))
            .arg("-C")
            .arg(&tree)
            .arg("pkg")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    tar(&["-czf"], "pkg.tar.gz");
    tar(&["-cf"], "pkg.tar");
    tar(&["--zstd", "-cf"], "pkg.tar.zst");
    write(
        &dir,
        &[
            ("notes.txt", "not an archive\n"),
            (
                "e2b.Dockerfile",
                "FROM bulkhead/debian\nADD pkg.tar.gz /opt/gz/\nADD pkg.tar /opt/plain\n\
                 ADD pkg.tar.zst /opt/zst/\nADD notes.txt /opt/notes/\n",
            ),
        ],
    );
    let o = srv.build(&dir, &["--name", "adds"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let id = srv.sandbox("adds");
    let out = srv.exec(
        &id,
        "for d in gz plain zst; do /opt/$d/pkg/bin/tool; cat /opt/$d/pkg/README; done; \
         cat /opt/notes/notes.txt; stat -c %a /opt/gz/pkg/bin/tool",
    );
    assert_eq!(
        out,
        "tool\nread me\ntool\nread me\ntool\nread me\nnot an archive\n755\n"
    );
    // An entry that climbs out of the destination is refused.
    let evil = t.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let o = Command::new("tar")
        .args(["-cf"])
        .arg(evil.join("evil.tar"))
        .args(["-P", "--transform", "s,^,../../,"])
        .arg("-C")
        .arg(&tree)
        .arg("pkg/README")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    write(
        &evil,
        &[(
            "e2b.Dockerfile",
            "FROM bulkhead/debian\nADD evil.tar /opt/e/\n",
        )],
    );
    let o = srv.build(&evil, &["--name", "evil"], &[]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("e2b.Dockerfile:2"), "{}", text(&o));
    assert!(text(&o).contains("evil.tar"), "{}", text(&o));
}

#[allow(dead_code)]
#[path = "../../builder/tests/common/registry_fixtures/server.rs"]
mod registry;

/// `FROM` a registry reference, end to end through the server: an image the test pushes to
/// Debian's docker-registry on 127.0.0.1 (the busybox root filesystem as one gzip layer) is
/// pulled by the build, a RUN step runs on it, and the template names the exact manifest
/// digest it was built from. A second build with nothing changed is cached.
#[test]
fn a_template_builds_from_a_registry_image() {
    if !registry::tools_present() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let reg = registry::Registry::start(registry::RegistryAuth::None);
    // An OCI layout of the busybox root filesystem.
    let layout = t.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let tar = t.path().join("layer.tar");
    let o = Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(common::rootfs("busybox"))
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let sha = |p: &Path| {
        let o = Command::new("sha256sum").arg(p).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let diff_id = sha(&tar);
    let o = Command::new("gzip")
        .args(["-n", "-k"])
        .arg(&tar)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let gz = t.path().join("layer.tar.gz");
    let blob = |p: &Path| -> (String, u64) {
        let h = sha(p);
        std::fs::copy(p, layout.join("blobs/sha256").join(&h)).unwrap();
        (h, std::fs::metadata(p).unwrap().len())
    };
    let (layer, layer_size) = blob(&gz);
    let config = t.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin:/sbin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
            "history": [{"created_by": "busybox from the test"}],
        })
        .to_string(),
    )
    .unwrap();
    let (cfg, cfg_size) = blob(&config);
    let manifest = t.path().join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{cfg}"), "size": cfg_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": format!("sha256:{layer}"), "size": layer_size}],
        })
        .to_string(),
    )
    .unwrap();
    let (man, man_size) = blob(&manifest);
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{man}"), "size": man_size,
            "annotations": {"org.opencontainers.image.ref.name": "1"}}]})
        .to_string(),
    )
    .unwrap();
    let reference = format!("{}/test/busybox:1", reg.addr);
    registry::skopeo_push(&format!("oci:{}:1", layout.display()), &reference, &[]);
    let digest = registry::skopeo_digest(&reference, &[]);

    let srv = Serve::start(t.path());
    let dir = t.path().join("fromreg");
    write(
        &dir,
        &[(
            "e2b.Dockerfile",
            &format!("FROM {reference}\nRUN echo pulled-and-ran > /marker && cat /marker\n"),
        )],
    );
    let o = srv.build(&dir, &["--name", "fromreg"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("pulled-and-ran"), "{}", text(&o));
    let o = srv.cli("template", &["info", "fromreg"], &[]);
    let info = text(&o);
    assert!(o.status.success(), "{info}");
    assert!(
        info.contains(&digest),
        "the exact base {digest} is named:\n{info}"
    );
    let o = srv.build(&dir, &["--name", "fromreg"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("cached"), "{}", text(&o));
}
