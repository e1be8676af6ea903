//! scripts/install.sh and scripts/uninstall.sh (docs/operations.md), run with `--root` into temporary
//! directories with fake binaries: files, modes and unit contents; upgrade, rollback, uninstall, `--purge`,
//! `--dry-run`, idempotency, the container and user-unit variants; the installed units pass
//! `systemd-analyze verify`; the scripts pass `bash -n` and shellcheck. With `--root` the scripts must never
//! call systemctl, useradd or podman: PATH holds fakes of those that record any call, and every run checks.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const BIN: &str = "usr/local/bin/glasscast";
const PREVIOUS: &str = "usr/local/lib/glasscast/glasscast.previous";
const CONF: &str = "etc/glasscast/glasscast.toml";
const CONF_NEW: &str = "etc/glasscast/glasscast.toml.new";
const UNIT: &str = "etc/systemd/system/glasscast.service";
const USER_UNIT: &str = "etc/systemd/user/glasscast.service";
const QUADLET: &str = "etc/containers/systemd/glasscast.container";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A temporary root to install into (`root/`), two fake binaries and a PATH of recording fakes.
struct Fixture(tempfile::TempDir);

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        ["root", "bin", "fakepath"].iter().for_each(|d| fs::create_dir(dir.path().join(d)).unwrap());
        for v in ["1", "2"] {
            write_exe(&dir.path().join(format!("bin/glasscast-{v}")), &format!("#!/bin/sh\necho 'glasscast {v}'\n"));
        }
        let log = dir.path().join("host-calls.log");
        for tool in ["systemctl", "useradd", "groupadd", "systemd-sysusers", "podman"] {
            let script = format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\n", log.display());
            write_exe(&dir.path().join("fakepath").join(tool), &script);
        }
        Self(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join("root").join(rel)
    }

    fn fake(&self, version: &str) -> PathBuf {
        self.0.path().join(format!("bin/glasscast-{version}"))
    }

    /// Runs `scripts/SCRIPT --root ROOT ARGS`; whatever its exit status, it must not have called host tools.
    fn try_run(&self, script: &str, args: &[&str]) -> Output {
        let path = format!("{}:{}", self.0.path().join("fakepath").display(), std::env::var("PATH").unwrap());
        let mut cmd = Command::new("bash");
        cmd.arg(repo("scripts").join(script)).arg(format!("--root={}", self.path("").display())).args(args);
        let out = cmd.env("PATH", path).output().expect("bash runs");
        let log = self.0.path().join("host-calls.log");
        assert!(!log.exists(), "{script} {args:?} called host tools with --root:\n{}", read(&log));
        out
    }

    /// Like `try_run`, and it must succeed; returns its stdout.
    fn run(&self, script: &str, args: &[&str]) -> String {
        let out = self.try_run(script, args);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{script} {args:?} failed:\n{stdout}\n{stderr}");
        stdout.into_owned()
    }

    fn install(&self, version: &str, args: &[&str]) -> String {
        let bin = self.fake(version);
        self.run("install.sh", &[&["--binary", bin.to_str().unwrap()], args].concat())
    }

    /// Every entry under the root: type, mode and content hash (files) or target (symlinks).
    fn tree(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut dirs = vec![self.path("")];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let mode = meta.permissions().mode() & 0o7777;
                let desc = if meta.file_type().is_symlink() {
                    format!("link -> {}", fs::read_link(&path).unwrap().display())
                } else if meta.is_dir() {
                    dirs.push(path.clone());
                    format!("dir {mode:o}")
                } else {
                    format!("file {mode:o} {:x}", Sha256::digest(fs::read(&path).unwrap()))
                };
                out.insert(path.strip_prefix(self.path("")).unwrap().display().to_string(), desc);
            }
        }
        out
    }

    fn glasscast_paths(&self) -> Vec<String> {
        self.tree().into_keys().filter(|p| p.contains("glasscast")).collect()
    }

    fn mode(&self, rel: &str) -> u32 {
        fs::symlink_metadata(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")).permissions().mode() & 0o7777
    }

    /// `rel` in the root has `other`'s content and the mode `mode`.
    fn is(&self, rel: &str, other: &Path, mode: u32) -> bool {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")) == fs::read(other).unwrap()
            && self.mode(rel) == mode
    }
}

fn write_exe(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn install_upgrade_rollback_uninstall_purge() {
    let fx = Fixture::new();
    fx.install("1", &[]);
    let default_conf = repo("config/glasscast.toml");
    assert!(fx.is(BIN, &fx.fake("1"), 0o755) && fx.is(CONF, &default_conf, 0o644) && fx.mode(UNIT) == 0o644);
    let unit = read(&fx.path(UNIT));
    let want = "ExecStart=/usr/local/bin/glasscast --config /etc/glasscast/glasscast.toml serve|Type=notify|\
        DynamicUser=yes|StateDirectory=glasscast|ProtectSystem=strict|CapabilityBoundingSet=|DeviceAllow=char-drm rw|\
        RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK";
    for line in want.split('|') {
        assert!(unit.lines().any(|l| l == line), "the unit lacks `{line}`:\n{unit}");
    }
    assert!(!unit.lines().any(|l| l.starts_with("MemoryDenyWriteExecute")), "orc needs W+X memory");
    assert!(!fx.path(PREVIOUS).exists() && !fx.path(CONF_NEW).exists() && !fx.path("var").exists());
    let first = fx.tree();
    fx.install("1", &[]);
    assert_eq!(fx.tree(), first, "a second install of the same binary changed files");

    // Upgrade: the edited configuration stays, the new default goes beside it, the old binary is kept.
    fs::write(fx.path(CONF), read(&fx.path(CONF)) + "# edited\n").unwrap();
    let edited = fs::read(fx.path(CONF)).unwrap();
    let out = fx.install("2", &[]);
    assert!(out.contains("glasscast.toml.new"), "the upgrade does not mention the .new file:\n{out}");
    assert!(fx.is(BIN, &fx.fake("2"), 0o755) && fx.is(PREVIOUS, &fx.fake("1"), 0o755));
    assert_eq!(fs::read(fx.path(CONF)).unwrap(), edited, "the edited configuration was overwritten");
    assert!(fx.is(CONF_NEW, &default_conf, 0o644));
    let upgraded = fx.tree();
    fx.install("2", &[]);
    assert_eq!(fx.tree(), upgraded, "running the upgrade again changed files");

    // Rollback swaps the two binaries, so a second one returns to the newer binary.
    fx.run("install.sh", &["--rollback"]);
    assert!(fx.is(BIN, &fx.fake("1"), 0o755) && fx.is(PREVIOUS, &fx.fake("2"), 0o755));
    fx.run("install.sh", &["--rollback"]);
    assert!(fx.is(BIN, &fx.fake("2"), 0o755) && fx.is(PREVIOUS, &fx.fake("1"), 0o755));

    // What systemd would have made: DynamicUser state and cache, a drop-in, the enable symlink.
    for dir in ["var/lib/private/glasscast/auth", "var/cache/private/glasscast", &format!("{UNIT}.d")] {
        fs::create_dir_all(fx.path(dir)).unwrap();
    }
    fs::create_dir_all(fx.path("etc/systemd/system/multi-user.target.wants")).unwrap();
    fs::write(fx.path("var/lib/private/glasscast/auth/admin_token"), "secret\n").unwrap();
    fs::write(fx.path(&format!("{UNIT}.d/override.conf")), "[Service]\n").unwrap();
    symlink("private/glasscast", fx.path("var/lib/glasscast")).unwrap();
    symlink("private/glasscast", fx.path("var/cache/glasscast")).unwrap();
    symlink(format!("/{UNIT}"), fx.path("etc/systemd/system/multi-user.target.wants/glasscast.service")).unwrap();

    fx.run("uninstall.sh", &[]);
    let kept: Vec<&str> = "etc/glasscast etc/glasscast/glasscast.toml etc/glasscast/glasscast.toml.new \
        etc/systemd/system/glasscast.service.d etc/systemd/system/glasscast.service.d/override.conf \
        var/lib/glasscast var/lib/private/glasscast var/lib/private/glasscast/auth \
        var/lib/private/glasscast/auth/admin_token"
        .split_whitespace()
        .collect();
    assert_eq!(fx.glasscast_paths(), kept, "uninstall must keep exactly the configuration and the state");
    assert_eq!(fs::read(fx.path(CONF)).unwrap(), edited);
    let uninstalled = fx.tree();
    fx.run("uninstall.sh", &[]);
    assert_eq!(fx.tree(), uninstalled, "a second uninstall changed files");
    fx.run("uninstall.sh", &["--purge"]);
    assert_eq!(fx.glasscast_paths(), Vec::<String>::new(), "--purge left files");
    fx.run("uninstall.sh", &["--purge"]);
}

#[test]
fn dry_run_changes_nothing() {
    let fx = Fixture::new();
    let out = fx.install("1", &["--dry-run"]);
    assert!(fx.tree().is_empty(), "install --dry-run wrote into an empty root: {:?}", fx.tree());
    assert!(out.contains("would write") && out.contains("would run: systemctl"), "{out}");
    fx.install("1", &[]);
    fx.install("2", &[]);
    fs::write(fx.path(CONF), "# edited\n").unwrap();
    let before = fx.tree();
    let b1 = fx.fake("1");
    for (script, args) in [
        ("install.sh", vec!["--binary", b1.to_str().unwrap(), "--dry-run"]),
        ("install.sh", vec!["--rollback", "--dry-run"]),
        ("uninstall.sh", vec!["--dry-run"]),
        ("uninstall.sh", vec!["--purge", "--dry-run"]),
    ] {
        let out = fx.run(script, &args);
        assert_eq!(fx.tree(), before, "{script} {args:?} changed the tree");
        assert!(out.contains("would "), "{script} {args:?} says nothing it would do:\n{out}");
    }
}

/// `systemd-analyze verify` on the units as installed. The system unit is checked in a root holding it, its
/// binary and this host's /usr/lib/systemd/system (for the targets it names); systemd 252 has no `--user`
/// with `--root`, so the user unit is checked from a copy whose ExecStart= names the installed fake.
#[test]
fn installed_units_pass_systemd_analyze() {
    let fx = Fixture::new();
    fx.install("1", &[]);
    let v = tempfile::tempdir().unwrap();
    ["usr/lib/systemd", "etc/systemd/system", "usr/local/bin"]
        .iter()
        .for_each(|d| fs::create_dir_all(v.path().join(d)).unwrap());
    let cp = Command::new("cp").arg("-a").arg("/usr/lib/systemd/system").arg(v.path().join("usr/lib/systemd")).status();
    assert!(cp.unwrap().success(), "copying /usr/lib/systemd/system (is the systemd package installed?)");
    fs::copy(fx.path(UNIT), v.path().join(UNIT)).unwrap();
    fs::copy(fx.path(BIN), v.path().join(BIN)).unwrap();
    let root = format!("--root={}", v.path().display());
    analyze(&["verify", &root, "glasscast.service"], None);
    // systemd's exposure score for the sandbox (1.9 when written): fail if it gets weaker than 2.5.
    analyze(&["security", "--offline=true", &root, "--threshold=25", "glasscast.service"], None);

    let ux = Fixture::new();
    ux.install("1", &["--user-unit", "--prefix", "/opt/gc"]);
    let opt_bin = "opt/gc/bin/glasscast";
    assert!(!ux.path(UNIT).exists() && ux.is(opt_bin, &ux.fake("1"), 0o755) && ux.mode(USER_UNIT) == 0o644);
    let user_unit = read(&ux.path(USER_UNIT));
    assert!(user_unit.contains("\nExecStart=/opt/gc/bin/glasscast serve\n"), "{user_unit}");
    let copy = v.path().join("glasscast.service");
    fs::write(&copy, user_unit.replace("/opt/gc/bin/glasscast", ux.path(opt_bin).to_str().unwrap())).unwrap();
    let runtime = tempfile::tempdir().unwrap();
    analyze(&["--user", "verify", copy.to_str().unwrap()], Some(runtime.path()));
}

/// Runs systemd-analyze; it must succeed and print no warning (an unknown key is only a warning). A `--user`
/// manager needs an XDG_RUNTIME_DIR, even only to verify.
fn analyze(args: &[&str], xdg_runtime_dir: Option<&Path>) {
    let mut cmd = Command::new("systemd-analyze");
    let out = cmd
        .envs(xdg_runtime_dir.map(|d| ("XDG_RUNTIME_DIR", d)))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze: {e} (package systemd)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze {args:?}: {}\n{stderr}", out.status);
}

#[test]
fn container_install_and_mode_conflicts() {
    let fx = Fixture::new();
    fx.run("install.sh", &["--container"]);
    assert!(fx.is(QUADLET, &repo("packaging/quadlet/glasscast.container"), 0o644));
    assert!(fx.is(CONF, &repo("config/glasscast.toml"), 0o644) && fx.mode("var/lib/glasscast") == 0o700);
    assert!(!fx.path(BIN).exists() && !fx.path(UNIT).exists());
    let quadlet = read(&fx.path(QUADLET));
    let want = "Image=localhost/glasscast:latest|Network=host|Notify=true|WantedBy=multi-user.target|\
        Volume=/etc/glasscast:/etc/glasscast:|Volume=/var/lib/glasscast:/var/lib/glasscast:";
    for line in want.split('|') {
        assert!(quadlet.lines().any(|l| l.starts_with(line)), "the Quadlet unit lacks `{line}`");
    }
    let installed = fx.tree();
    fx.run("install.sh", &["--container"]);
    assert_eq!(fx.tree(), installed, "a second container install changed files");

    // Two glasscast.service units cannot coexist: a binary install over a container one is refused.
    for args in [vec!["--binary", fx.fake("1").to_str().unwrap()], vec!["--user-unit"]] {
        let out = fx.try_run("install.sh", &args);
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("uninstall.sh"));
        assert_eq!(fx.tree(), installed, "a refused install changed files");
    }

    // Quadlet comes with Podman >= 4.4; Debian 12's 4.3 has none, and then only the content above is checked.
    let mut generator = Command::new("/usr/libexec/podman/quadlet");
    match generator.arg("-dryrun").env("QUADLET_UNIT_DIRS", fx.path("etc/containers/systemd")).output() {
        Ok(out) => assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("podman run")),
        Err(_) => eprintln!("note: no Podman Quadlet here (Podman < 4.4): glasscast.container checked by content only"),
    }
    fx.run("uninstall.sh", &[]);
    assert_eq!(fx.glasscast_paths(), ["etc/glasscast", CONF, "var/lib/glasscast"]);
}

#[test]
fn scripts_pass_bash_n_and_shellcheck() {
    for script in ["scripts/install.sh", "scripts/uninstall.sh", "scripts/install-common.sh"] {
        let out = Command::new("bash").arg("-n").arg(repo(script)).output().unwrap();
        assert!(out.status.success(), "bash -n {script}: {}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new("shellcheck")
            .args(["-x", "-P", "SCRIPTDIR"])
            .arg(repo(script))
            .output()
            .expect("shellcheck (package shellcheck)");
        assert!(out.status.success(), "shellcheck {script}:\n{}", String::from_utf8_lossy(&out.stdout));
    }
}
