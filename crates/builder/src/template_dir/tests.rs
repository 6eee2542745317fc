//! Loading, walking, matching and hashing on real temporary directories.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(p, content).unwrap();
}

fn rels(entries: &[ContextEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e.rel.display().to_string())
        .collect()
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "e2b.Dockerfile", "FROM scratch\n");
    write(d, "start-up.sh", "#!/bin/sh\n");
    write(d, "src/a.py", "a");
    write(d, "src/b.py", "b");
    write(d, "src/sub/c.py", "c");
    write(d, "src/notes.md", "n");
    write(d, "build/out.o", "o");
    write(d, "build/keep/k.txt", "k");
    write(d, ".env", "AWS_SECRET_ACCESS_KEY=x\n");
    symlink("src/a.py", d.join("link")).unwrap();
    t
}

#[test]
fn walk_is_sorted_skips_ignored_and_keeps_symlinks() {
    let t = tree();
    let ignore = DockerIgnore::parse(".env\nbuild\n!build/keep\n*.md\n**/*.md\n");
    let entries = context_files(t.path(), &ignore).unwrap();
    assert_eq!(
        rels(&entries),
        [
            "",
            "build",
            "build/keep",
            "build/keep/k.txt",
            "e2b.Dockerfile",
            "link",
            "src",
            "src/a.py",
            "src/b.py",
            "src/sub",
            "src/sub/c.py",
            "start-up.sh"
        ]
    );
    assert!(entries[0].is_root());
    let link = entries.iter().find(|e| e.rel == Path::new("link")).unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.link_target.as_deref(), Some(Path::new("src/a.py")));
    assert_eq!(link.size, 8);
    let a = entries
        .iter()
        .find(|e| e.rel == Path::new("src/a.py"))
        .unwrap();
    assert_eq!((a.kind, a.size), (EntryKind::File, 1));
    // Without a re-include, an excluded directory is not entered.
    let entries = context_files(t.path(), &DockerIgnore::parse("build")).unwrap();
    assert!(!rels(&entries).iter().any(|r| r.starts_with("build")));
}

#[test]
fn sources_match_like_docker_copy() {
    let t = tree();
    let entries = context_files(t.path(), &DockerIgnore::default()).unwrap();
    let m = |p: &str| {
        match_sources(&entries, p).map(|v| rels(&v.into_iter().cloned().collect::<Vec<_>>()))
    };
    assert_eq!(m("src/*.py").unwrap(), ["src/a.py", "src/b.py"]);
    assert_eq!(m("/src/sub/").unwrap(), ["src/sub"]);
    assert_eq!(m("./start-up.sh").unwrap(), ["start-up.sh"]);
    assert_eq!(m("*/*.md").unwrap(), ["src/notes.md"]);
    assert_eq!(m(".").unwrap(), [""]);
    assert_eq!(m("/").unwrap(), [""]);
    assert_eq!(m("s?c/[ab].py").unwrap(), ["src/a.py", "src/b.py"]);
    let e = m("../etc/passwd").unwrap_err();
    assert_eq!(
        e.to_string(),
        "COPY source ../etc/passwd is outside the build context"
    );
    assert!(matches!(
        m("src/../../x"),
        Err(TemplateDirError::SourceOutsideContext { .. })
    ));
    let e = m("requirements.txt").unwrap_err();
    assert_eq!(
        e.to_string(),
        "COPY source requirements.txt matched no file in the build context"
    );
    assert!(matches!(
        m("src/[x"),
        Err(TemplateDirError::BadPattern { .. })
    ));
    // What .dockerignore took out cannot be copied.
    let kept = context_files(t.path(), &DockerIgnore::parse(".env")).unwrap();
    assert!(match_sources(&kept, ".env").is_err());
}

#[test]
fn hash_follows_content_mode_and_names_not_mtime() {
    let t = tree();
    let d = t.path();
    let hash = |patterns: &[&str]| {
        let entries = context_files(d, &DockerIgnore::default()).unwrap();
        let p: Vec<String> = patterns.iter().map(|s| (*s).to_owned()).collect();
        hash_sources(d, &entries, &p).unwrap()
    };
    let h0 = hash(&["src"]);
    assert_eq!(h0, hash(&["src"]));
    // Touching a file (same bytes) changes nothing.
    write(d, "src/a.py", "a");
    assert_eq!(h0, hash(&["src"]));
    // Files outside the sources change nothing.
    write(d, "start-up.sh", "#!/bin/bash\n");
    assert_eq!(h0, hash(&["src"]));
    write(d, "src/sub/c.py", "C");
    let h1 = hash(&["src"]);
    assert_ne!(h0, h1);
    fs::set_permissions(d.join("src/b.py"), fs::Permissions::from_mode(0o755)).unwrap();
    let h2 = hash(&["src"]);
    assert_ne!(h1, h2);
    fs::rename(d.join("src/b.py"), d.join("src/b2.py")).unwrap();
    assert_ne!(h2, hash(&["src"]));
    // A symlink's target is hashed, not followed.
    let l0 = hash(&["link"]);
    fs::remove_file(d.join("link")).unwrap();
    symlink("src/b2.py", d.join("link")).unwrap();
    assert_ne!(l0, hash(&["link"]));
    // The same files elsewhere hash the same.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "src/x", "same");
    write(d, "src2/x", "same");
    let e1 = context_files(other.path(), &DockerIgnore::default()).unwrap();
    let e2 = context_files(d, &DockerIgnore::default()).unwrap();
    let p1 = hash_sources(other.path(), &e1, &["src/x".to_owned()]).unwrap();
    write(other.path(), "src2/x", "same");
    let e1 = context_files(other.path(), &DockerIgnore::default()).unwrap();
    assert_eq!(
        p1,
        hash_sources(other.path(), &e1, &["src/x".to_owned()]).unwrap()
    );
    let a = hash_sources(other.path(), &e1, &["src2/x".to_owned()]).unwrap();
    let b = hash_sources(d, &e2, &["src2/x".to_owned()]).unwrap();
    assert_eq!(a, b);
    assert!(hash_sources(d, &e2, &["missing".to_owned()]).is_err());
}

#[test]
fn load_finds_the_dockerfile_like_e2b() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let e = TemplateDir::load(d, None).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("there is no e2b.Dockerfile and no Dockerfile"),
        "{e}"
    );
    write(d, "Dockerfile", "FROM a\n");
    let td = TemplateDir::load(d, None).unwrap();
    assert_eq!(td.dockerfile_name, "Dockerfile");
    assert_eq!(td.config.dockerfile, "Dockerfile");
    write(d, "e2b.Dockerfile", "FROM b\n");
    let td = TemplateDir::load(d, None).unwrap();
    assert_eq!(td.dockerfile_text, "FROM b\n");
    assert_eq!(td.dockerfile().unwrap().stages[0].base, "b");
    let td = TemplateDir::load(d, Some(Path::new("Dockerfile"))).unwrap();
    assert_eq!(td.dockerfile_text, "FROM a\n");
    write(
        d,
        "e2b.toml",
        "dockerfile = \"docker/Custom\"\nteam_id = \"t\"\n",
    );
    let e = TemplateDir::load(d, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no Dockerfile in {}: there is no docker/Custom",
            d.display()
        )
    );
    write(d, "docker/Custom", "FROM c\n");
    let td = TemplateDir::load(d, None).unwrap();
    assert_eq!(td.dockerfile_text, "FROM c\n");
    assert_eq!(td.ignored_keys, ["team_id"]);
    write(d, "e2b.toml", "dockerfile = \"../Dockerfile\"\n");
    let e = TemplateDir::load(d, None).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("dockerfile ../Dockerfile is outside the template directory")
    );
    write(d, "e2b.toml", "dockerfile = [\n");
    let e = TemplateDir::load(d, None).unwrap_err();
    assert!(
        matches!(e, TemplateDirError::ConfigSyntax { line: 1 | 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("e2b.toml:"));
}

#[test]
fn load_refusals_and_ignore_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let missing = d.join("nope");
    let e = TemplateDir::load(&missing, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("template directory {} does not exist", missing.display())
    );
    write(d, "file", "x");
    assert!(matches!(
        TemplateDir::load(&d.join("file"), None),
        Err(TemplateDirError::NotADir { .. })
    ));
    write(d, "e2b.Dockerfile", "FROM a\n");
    write(d, ".dockerignore", "# none\n.env\n");
    let td = TemplateDir::load(d, None).unwrap();
    assert_eq!(td.ignore.patterns(), [".env"]);
    assert_eq!(
        td.ignore_path.as_deref(),
        Some(d.join(".dockerignore").as_path())
    );
    write(d, "e2b.Dockerfile.dockerignore", "secrets\n");
    let td = TemplateDir::load(d, None).unwrap();
    assert_eq!(td.ignore.patterns(), ["secrets"]);
    write(d, "e2b.Dockerfile.dockerignore", "ok\n[bad\n");
    let e = TemplateDir::load(d, None).unwrap_err();
    assert!(
        e.to_string().ends_with("e2b.Dockerfile.dockerignore:2: [bad is not a valid pattern: a character class is not closed or has a bad range"),
        "{e}"
    );
}

/// Generated `.dockerignore`, `.env` and source patterns: nothing panics.
#[test]
fn never_panics_on_generated_input() {
    const PIECES: &[&str] = &[
        "*", "**", "?", "[", "]", "^", "-", "\\", "/", "!", "#", " ", "\n", ".", "..", "a", "é",
        "=", "\"", "'", "$", "{", "}", "export ", "A",
    ];
    let t = tree();
    let entries = context_files(t.path(), &DockerIgnore::default()).unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let n = (next() % 12) as usize;
        let mut text = String::new();
        for _ in 0..n {
            text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        let ignore = DockerIgnore::parse(&text);
        for e in &entries {
            let _ = ignore.matches(&e.rel, e.kind == EntryKind::Dir);
        }
        let _ = match_sources(&entries, &text);
        let _ = parse_dotenv(".env", &text);
    }
}
