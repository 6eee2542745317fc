//! Every instruction and every refusal of [`parse`], with its position.

use super::*;

fn steps(src: &str) -> Vec<Instruction> {
    let df = parse("Dockerfile", src).unwrap();
    df.stages
        .into_iter()
        .flat_map(|s| s.steps)
        .map(|s| s.instr)
        .collect()
}

fn one(src: &str) -> Instruction {
    let mut v = steps(&format!("FROM scratch\n{src}"));
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

fn err(src: &str) -> String {
    parse("e2b.Dockerfile", src).unwrap_err().to_string()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn stages_and_from() {
    let df = parse(
        "Dockerfile",
        "ARG PY=3.12\nARG DEBIAN\nfrom --platform=linux/amd64 python:${PY}-slim AS Build\nFROM build as Final\nFROM scratch\n",
    )
    .unwrap();
    assert_eq!(
        df.global_args,
        vec![
            ArgDecl {
                name: "PY".into(),
                default: Some("3.12".into())
            },
            ArgDecl {
                name: "DEBIAN".into(),
                default: None
            }
        ]
    );
    let s = &df.stages;
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].base, "python:${PY}-slim");
    assert_eq!(s[0].name.as_deref(), Some("build"));
    assert_eq!(s[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(s[0].loc, Loc { line: 3, col: 1 });
    assert_eq!((s[1].index, s[1].name.as_deref()), (1, Some("final")));
    assert_eq!((s[2].index, s[2].name.as_deref()), (2, None));
    assert_eq!(df.escape, '\\');
}

#[test]
fn arg_env_label() {
    assert_eq!(
        one("ARG A B=2 C=\"x y\""),
        Instruction::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some("\"x y\"".into())
            },
        ])
    );
    assert_eq!(
        one(r#"ENV K=V K2="v 2" K3=a\ b K4=$HOME"#),
        Instruction::Env(kv(&[
            ("K", "V"),
            ("K2", "\"v 2\""),
            ("K3", r"a\ b"),
            ("K4", "$HOME")
        ]))
    );
    assert_eq!(
        one("ENV PATH /usr/local/bin:$PATH  with spaces"),
        Instruction::Env(kv(&[("PATH", "/usr/local/bin:$PATH  with spaces")]))
    );
    assert_eq!(
        one(r#"LABEL "com.example.vendor"="ACME Incorporated" version=1.0"#),
        Instruction::Label(kv(&[
            ("com.example.vendor", "\"ACME Incorporated\""),
            ("version", "1.0")
        ]))
    );
    assert_eq!(
        one("MAINTAINER Dev <dev@example.com>"),
        Instruction::Label(kv(&[("maintainer", "Dev <dev@example.com>")]))
    );
    // Values expand (and lose their quotes) as Docker does.
    let Instruction::Env(e) = one(r#"ENV A="it's $X" B='$X'"#) else {
        panic!()
    };
    let vars = |n: &str| (n == "X").then(|| "x".to_owned());
    assert_eq!(expand(&e[0].1, &vars).unwrap(), "it's x");
    assert_eq!(expand(&e[1].1, &vars).unwrap(), "$X");
}

#[test]
fn mount_values_naming_variables_expand_and_parse_again() {
    let Instruction::Run(r) =
        one("RUN --mount=type=secret,id=$ID,target=${DIR}/t --mount=type=cache,target=/c true")
    else {
        panic!()
    };
    assert_eq!(r.mount_values.len(), 2);
    let vars = |n: &str| match n {
        "ID" => Some("token".to_owned()),
        "DIR" => Some("/root/.conf".to_owned()),
        _ => None,
    };
    let mounts = r
        .expanded_mounts(&|raw| expand(raw, &vars).map_err(|e| e.to_string()))
        .unwrap();
    let RunMount::Secret(s) = &mounts[0] else {
        panic!()
    };
    assert_eq!(
        (s.id.as_str(), s.target.as_deref()),
        ("token", Some("/root/.conf/t"))
    );
    assert_eq!(mounts[1], r.mounts[1]);
    // A value that expands to nonsense fails with the expanded text.
    let bad = |n: &str| (n == "ID").then(|| "a,type=bind".to_owned());
    let err = r
        .expanded_mounts(&|raw| expand(raw, &bad).map_err(|e| e.to_string()))
        .unwrap_err();
    assert!(err.contains("--mount="), "{err}");
}

#[test]
fn run_forms_mounts_network() {
    assert_eq!(
        one("RUN apt-get update"),
        Instruction::Run(Run {
            mounts: vec![],
            mount_values: vec![],
            network: None,
            command: Command::Shell("apt-get update".into()),
            heredocs: vec![],
        })
    );
    let Instruction::Run(r) = one(r#"run ["/bin/echo", "a b"]"#) else {
        panic!()
    };
    assert_eq!(
        r.command,
        Command::Exec(vec!["/bin/echo".into(), "a b".into()])
    );
    assert_eq!(r.shell_script(), None);
    let Instruction::Run(r) = one(
        "RUN --mount=type=secret,id=aws_access_key_id --mount=type=cache,target=/root/.cache/pip,sharing=locked --network=none cat /run/secrets/aws_access_key_id",
    ) else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 2);
    let RunMount::Secret(s) = &r.mounts[0] else {
        panic!()
    };
    assert_eq!(s.target.as_deref(), Some("/run/secrets/aws_access_key_id"));
    let RunMount::Cache(c) = &r.mounts[1] else {
        panic!()
    };
    assert_eq!((c.key(), c.sharing), ("/root/.cache/pip", Sharing::Locked));
    assert_eq!(r.network.as_deref(), Some("none"));
    assert_eq!(
        r.command,
        Command::Shell("cat /run/secrets/aws_access_key_id".into())
    );
}

#[test]
fn run_heredocs() {
    let Instruction::Run(r) = one("RUN <<EOF\nset -e\necho $HOME\nEOF") else {
        panic!()
    };
    assert_eq!(r.command, Command::Shell(String::new()));
    assert_eq!(r.heredocs[0].body, "set -e\necho $HOME\n");
    assert_eq!(r.shell_script().unwrap(), "set -e\necho $HOME\n");
    let Instruction::Run(r) = one("RUN python3 <<'PY'\nprint('hi')\nPY") else {
        panic!()
    };
    assert_eq!(r.command, Command::Shell("python3 <<'PY'".into()));
    assert!(!r.heredocs[0].expand);
    assert_eq!(r.shell_script().unwrap(), "python3 <<'PY'\nprint('hi')\nPY");
    let Instruction::Run(r) = one("RUN cat <<A >a && cat <<-B >b\nx\nA\n\ty\n\tB") else {
        panic!()
    };
    assert_eq!(r.heredocs.len(), 2);
    assert_eq!(r.heredocs[1].body, "y\n");
    // BuildKit reads `<< EOF` (a space after <<) as a heredoc too.
    let Instruction::Run(r) = one("RUN << EOF\necho spaced\nEOF") else {
        panic!()
    };
    assert_eq!(r.command, Command::Shell(String::new()));
    assert_eq!(r.heredocs[0].body, "echo spaced\n");
    let Instruction::Copy(c) = one("COPY << X /etc/x\nbody\nX") else {
        panic!()
    };
    assert!(c.sources.is_empty() && c.dest == "/etc/x" && c.heredocs[0].name == "X");
    // Without a heredoc body the words are an ordinary command.
    let Instruction::Run(r) = one("RUN [\"sh\", \"-c\", \"cat <<EOF\"]") else {
        panic!()
    };
    assert!(r.heredocs.is_empty() && matches!(r.command, Command::Exec(_)));
    let df = parse("Dockerfile", "FROM a\nRUN <<EOF\necho\nEOF\n").unwrap();
    assert_eq!(df.stages[0].steps[0].text, "RUN <<EOF\necho\nEOF");
}

#[test]
fn copy_and_add() {
    assert_eq!(
        one("COPY --from=build --chown=user:user --chmod=0755 --link a b* /dest/"),
        Instruction::Copy(Copy {
            add: false,
            from: Some("build".into()),
            chown: Some("user:user".into()),
            chmod: Some("0755".into()),
            link: true,
            sources: vec!["a".into(), "b*".into()],
            dest: "/dest/".into(),
            heredocs: vec![],
        })
    );
    let Instruction::Copy(c) = one(r#"ADD ["a b", "/d"]"#) else {
        panic!()
    };
    assert!(c.add && c.sources == ["a b"] && c.dest == "/d");
    let Instruction::Copy(c) = one("COPY --link=false <<EOF /etc/motd\nhello\nEOF") else {
        panic!()
    };
    assert!(!c.link && c.sources.is_empty());
    assert_eq!(c.heredocs[0].body, "hello\n");
    assert_eq!(c.dest, "/etc/motd");
    let Instruction::Copy(c) = one("COPY --link=TRUE a b") else {
        panic!()
    };
    assert!(c.link);
}

#[test]
fn the_other_instructions() {
    assert_eq!(
        one("WORKDIR /home/user/my dir"),
        Instruction::Workdir("/home/user/my dir".into())
    );
    assert_eq!(
        one("USER user:group"),
        Instruction::User("user:group".into())
    );
    assert_eq!(
        one(r#"SHELL ["/bin/bash", "-o", "pipefail", "-c"]"#),
        Instruction::Shell(vec![
            "/bin/bash".into(),
            "-o".into(),
            "pipefail".into(),
            "-c".into()
        ])
    );
    assert_eq!(
        one("CMD python3 -m http.server"),
        Instruction::Cmd(Command::Shell("python3 -m http.server".into()))
    );
    assert_eq!(
        one(r#"ENTRYPOINT ["/init"]"#),
        Instruction::Entrypoint(Command::Exec(vec!["/init".into()]))
    );
    assert_eq!(
        one("EXPOSE 80 53/udp"),
        Instruction::Expose(vec!["80".into(), "53/udp".into()])
    );
    assert_eq!(
        one(r#"VOLUME ["/data", "/x"]"#),
        Instruction::Volume(vec!["/data".into(), "/x".into()])
    );
    assert_eq!(
        one("VOLUME /a /b"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        one("STOPSIGNAL SIGINT"),
        Instruction::StopSignal("SIGINT".into())
    );
}

#[test]
fn escape_directive_and_continuations() {
    let src = "# escape=`\nFROM scratch\nRUN echo a `\n  b\nCOPY C:\\x /y\n";
    let df = parse("Dockerfile", src).unwrap();
    assert_eq!(df.escape, '`');
    let steps = &df.stages[0].steps;
    assert_eq!(steps[0].text, "RUN echo a   b");
    assert_eq!(steps[1].loc, Loc { line: 5, col: 1 });
    let Instruction::Copy(c) = &steps[1].instr else {
        panic!()
    };
    assert_eq!(c.sources, ["C:\\x"]);
}

#[test]
fn refusals_with_positions() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "e2b.Dockerfile:1:1: the Dockerfile has no FROM instruction",
        ),
        (
            "# only a comment\n",
            "e2b.Dockerfile:1:1: the Dockerfile has no FROM instruction",
        ),
        (
            "ARG A\n",
            "e2b.Dockerfile:1:1: the Dockerfile has no FROM instruction",
        ),
        (
            "ENV A=1\nFROM a",
            "e2b.Dockerfile:1:1: ENV comes before the first FROM; only ARG may come before FROM",
        ),
        (
            "FROM a\n\n  HEALTHCHECK CMD true",
            "e2b.Dockerfile:3:3: HEALTHCHECK is not supported by this builder",
        ),
        (
            "FROM a\nONBUILD RUN x",
            "e2b.Dockerfile:2:1: ONBUILD is not supported by this builder",
        ),
        (
            "FROM a\nFETCH x",
            "e2b.Dockerfile:2:1: FETCH is not a Dockerfile instruction",
        ),
        (
            "FROM a\nRUN --mount=type=ssh ssh x",
            "e2b.Dockerfile:2:5: RUN --mount type=ssh is not supported; supported: secret, cache",
        ),
        (
            "FROM a\nRUN --network=none \\\n  --mount=type=bind,target=/x make",
            "e2b.Dockerfile:3:3: RUN --mount type=bind is not supported; supported: secret, cache",
        ),
        (
            "FROM a\nRUN --network=bridge x",
            "e2b.Dockerfile:2:5: RUN --network=bridge is not supported; supported: default, none, host",
        ),
        (
            "FROM a\nRUN --security=insecure x",
            "e2b.Dockerfile:2:5: RUN --security is not supported by this builder",
        ),
        (
            "FROM a\nCOPY --bogus a b",
            "e2b.Dockerfile:2:6: COPY does not take the flag --bogus",
        ),
        (
            "FROM a\nADD --from=x a b",
            "e2b.Dockerfile:2:5: ADD does not take the flag --from",
        ),
        (
            "FROM a\nCOPY --from a b",
            "e2b.Dockerfile:2:6: COPY --from needs a value: --from=...",
        ),
        (
            "FROM a\nCOPY --from=a --from=b a b",
            "e2b.Dockerfile:2:15: COPY --from is given more than once",
        ),
        (
            "FROM a\nCOPY --link=maybe a b",
            "e2b.Dockerfile:2:6: COPY --link takes true or false",
        ),
        (
            "FROM a\nENV --x=1 A=1",
            "e2b.Dockerfile:2:5: ENV does not take the flag --x",
        ),
        (
            "FROM a\nADD https://example.com/x.tgz /x",
            "e2b.Dockerfile:2:5: ADD from a URL is not supported (https://example.com/x.tgz); use RUN curl or wget instead",
        ),
        (
            "FROM a\nCOPY onlyone",
            "e2b.Dockerfile:2:1: COPY needs at least one source and a destination: COPY src... dest",
        ),
        ("FROM a\nRUN", "e2b.Dockerfile:2:1: RUN needs a command"),
        (
            "FROM a\nWORKDIR",
            "e2b.Dockerfile:2:1: WORKDIR needs an argument",
        ),
        (
            "FROM a\nENV A",
            "e2b.Dockerfile:2:5: ENV A has no value: write ENV A=value",
        ),
        (
            "FROM a\nENV A=1 B",
            "e2b.Dockerfile:2:9: ENV B has no '=': write name=value",
        ),
        (
            "FROM a\nENV =1",
            "e2b.Dockerfile:2:5: ENV names can not be blank",
        ),
        (
            "FROM a\nARG =1",
            "e2b.Dockerfile:2:5: ARG names can not be blank",
        ),
        (
            "FROM a\nSHELL /bin/bash -c",
            "e2b.Dockerfile:2:7: SHELL takes the JSON form: SHELL [\"executable\", \"parameters\"]",
        ),
        (
            "FROM a\nCMD [1, 2]",
            "e2b.Dockerfile:2:5: CMD in the JSON form takes only strings",
        ),
        (
            "FROM a\nVOLUME [\"\"]",
            "e2b.Dockerfile:2:8: VOLUME paths can not be empty",
        ),
        (
            "FROM a b",
            "e2b.Dockerfile:1:1: FROM takes an image and optionally AS and a stage name: FROM [--platform=...] image [AS name]",
        ),
        (
            "FROM a AS 1st",
            "e2b.Dockerfile:1:11: 1st is not a valid stage name: it must start with a letter and hold only letters, digits, '-', '_' and '.'",
        ),
        (
            "FROM a AS x\nFROM b AS X",
            "e2b.Dockerfile:2:1: the stage name x is used twice",
        ),
        (
            "FROM a\nRUN cat <<EOF\nnever ends\n",
            "e2b.Dockerfile:2:9: heredoc <<EOF is never terminated: no line reads EOF",
        ),
        (
            "# escape=\\\n# escape=`\nFROM a",
            "e2b.Dockerfile:2:1: only one escape parser directive can be used",
        ),
        (
            "FROM a\nRUN --mount=type=secret,id=a,mode=999 x",
            "e2b.Dockerfile:2:5: RUN --mount mode=999 is not an octal number",
        ),
        (
            "FROM a\nRUN --mount=type=cache,target=/x,bogus=1 x",
            "e2b.Dockerfile:2:5: RUN --mount key bogus is not supported for type=cache; supported: id, target, sharing, mode, uid, gid, ro",
        ),
        (
            "FROM a\nRUN --mount x",
            "e2b.Dockerfile:2:5: RUN --mount needs a value: --mount=type=...",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(&err(src), want, "source {src:?}");
    }
}

#[test]
fn never_panics_on_odd_input() {
    for src in [
        "FROM a\nRUN \\",
        "FROM a\n\\\n",
        "FROM a\nRUN <<",
        "FROM a\nCOPY <<EOF",
        "FROM a\nRUN --",
        "FROM a\nRUN --mount=",
        "FROM a\nENV \"",
        "FROM a\nLABEL a=\"",
        "\u{feff}FROM a\r\nRUN x\r\n",
        "FROM a\nRUN ü \\\n é",
        "#\n#=\nFROM a",
    ] {
        let _ = parse("Dockerfile", src);
    }
}

/// Random lines built from the characters the parser treats specially: no input panics.
#[test]
fn never_panics_on_generated_input() {
    const PIECES: &[&str] = &[
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "LABEL ",
        "ARG ",
        "FROM ",
        "SHELL ",
        "CMD ",
        "<<",
        "<<-",
        "EOF",
        "\"",
        "'",
        "\\",
        "`",
        "$",
        "{",
        "}",
        ":-",
        "=",
        "--mount=",
        "type=secret,",
        "type=cache,",
        "target=",
        "id=",
        ",",
        "--",
        "[",
        "]",
        "\n",
        " ",
        "\t",
        "#",
        "# escape=`\n",
        "é",
        "\r\n",
        "AS ",
        "a",
        "/",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let n = (next() % 24) as usize;
        let mut src = String::from("FROM a\n");
        for _ in 0..n {
            src.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        if let Ok(df) = parse("Dockerfile", &src) {
            for step in df.stages.iter().flat_map(|s| &s.steps) {
                if let Instruction::Env(kv) | Instruction::Label(kv) = &step.instr {
                    for (_, v) in kv {
                        let _ = expand_with_escape(v, df.escape, &|_| None);
                    }
                }
            }
        }
    }
}
