//! Network-namespace testbeds (root only): hosts on 198.18.0.0/15, a router doing NAT with nftables, and a
//! glasscast run as its own process inside a namespace. Everything made here is removed on drop.
//!
//! ```text
//!  [server ns] 198.18.10.2 --- 198.18.10.1 [router ns] 198.18.20.1 --- 198.18.20.2 [viewer ns]
//!              (LAN, behind the router)      masquerade out of the WAN,    ("the internet": no route
//!                                            port forwards in               to the LAN)
//! ```

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const SERVER_LAN: &str = "198.18.10.2";
pub const ROUTER_WAN: &str = "198.18.20.1";
/// With [`HomeRouter::dual_stack`]: the server's global IPv6 address (routed, no NAT, as ISPs hand out).
pub const SERVER_V6: &str = "2001:db8:10::2";

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a testbed command");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn exec(ns: &str, args: &[&str]) {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all);
}

/// This host's first non-loopback IPv4 address.
pub fn own_ipv4() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback())
}

/// Whether this process may build testbeds (root, with `ip` and `nft`).
pub fn available() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let nft = Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success());
    root && nft
}

/// A server behind a home router, a viewer on the router's outside.
pub struct HomeRouter {
    pub server: String,
    pub router: String,
    pub viewer: String,
}

impl HomeRouter {
    /// Builds the three namespaces and links; the router forwards `tcp_ports` and `udp_ports` from its
    /// outside address to the server.
    pub fn new(tcp_ports: &[u16], udp_ports: &[u16]) -> Self {
        assert!(available(), "network testbeds need root and nftables (make test installs nftables; CI runs as root)");
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}{}", std::process::id() % 100_000, N.fetch_add(1, Ordering::Relaxed));
        let bed = Self { server: format!("gc{id}s"), router: format!("gc{id}r"), viewer: format!("gc{id}v") };
        for ns in [&bed.server, &bed.router, &bed.viewer] {
            run(&["ip", "netns", "add", ns]);
            exec(ns, &["ip", "link", "set", "lo", "up"]);
        }
        bed.link(&bed.server, SERVER_LAN, &bed.router, "198.18.10.1", "l");
        bed.link(&bed.viewer, "198.18.20.2", &bed.router, ROUTER_WAN, "w");
        exec(&bed.server, &["ip", "route", "add", "default", "via", "198.18.10.1"]);
        // The viewer's default route is the router, which lets in from outside only port forwards and
        // replies (IPv4; below): what is sent to the private LAN is lost on the way, as on the internet. (With
        // no route, or a blackhole one, sending fails at once, and coturn ends an allocation whose send fails.)
        exec(&bed.viewer, &["ip", "route", "add", "default", "via", ROUTER_WAN]);
        exec(&bed.router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let wan = format!("{}w", bed.router);
        let mut rules = format!(
            "table ip nat {{\n chain postrouting {{ type nat hook postrouting priority 100; oifname \"{wan}\" masquerade; }}\n \
             chain prerouting {{ type nat hook prerouting priority -100;\n"
        );
        for (proto, ports) in [("tcp", tcp_ports), ("udp", udp_ports)] {
            for p in ports {
                rules.push_str(&format!("  iifname \"{wan}\" {proto} dport {p} dnat to {SERVER_LAN}:{p};\n"));
            }
        }
        rules.push_str(" }\n}\n");
        rules.push_str(&format!(
            "table ip home_firewall {{\n chain from_wan {{ type filter hook forward priority 0;\n  \
             iifname \"{wan}\" ct state established,related accept;\n  iifname \"{wan}\" ct status dnat accept;\n  \
             iifname \"{wan}\" drop;\n }}\n}}\n"
        ));
        load_rules(&bed.router, &rules);
        bed
    }

    /// [`HomeRouter::new`], and IPv6 routed end to end: the server has `SERVER_V6` (2001:db8:10::/64 on
    /// the LAN), the viewer 2001:db8:20::2, the router forwards between them without NAT.
    pub fn dual_stack(tcp_ports: &[u16], udp_ports: &[u16]) -> Self {
        let bed = Self::new(tcp_ports, udp_ports);
        let v6 = |ns: &str, dev: String, ip: &str| exec(ns, &["ip", "-6", "addr", "add", ip, "dev", &dev, "nodad"]);
        v6(&bed.server, format!("{}l", bed.server), &format!("{SERVER_V6}/64"));
        v6(&bed.router, format!("{}l", bed.router), "2001:db8:10::1/64");
        v6(&bed.router, format!("{}w", bed.router), "2001:db8:20::1/64");
        v6(&bed.viewer, format!("{}w", bed.viewer), "2001:db8:20::2/64");
        exec(&bed.router, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        exec(&bed.server, &["ip", "-6", "route", "add", "default", "via", "2001:db8:10::1"]);
        exec(&bed.viewer, &["ip", "-6", "route", "add", "2001:db8:10::/64", "via", "2001:db8:20::1"]);
        bed
    }

    /// Loads nftables `rules` (a whole table) into the viewer's namespace.
    pub fn filter_viewer(&self, rules: &str) {
        load_rules(&self.viewer, rules);
    }

    /// Loads nftables `rules` into the router's namespace (a filter beside its NAT).
    pub fn filter_router(&self, rules: &str) {
        load_rules(&self.router, rules);
    }

    /// Adds an address to the server's LAN interface (as DHCP, SLAAC or a VPN would, while glasscast runs).
    pub fn add_server_address(&self, cidr: &str) {
        let dev = format!("{}l", self.server);
        let family = if cidr.contains(':') { "-6" } else { "-4" };
        exec(&self.server, &["ip", family, "addr", "add", cidr, "dev", &dev, "nodad"]);
    }

    /// A veth pair between `a` (address `a_ip`) and `b` (`b_ip`), both /24; the `b` end is named `b` + `tag`.
    fn link(&self, a: &str, a_ip: &str, b: &str, b_ip: &str, tag: &str) {
        let (ea, eb) = (format!("{a}{tag}"), format!("{b}{tag}"));
        run(&["ip", "link", "add", &ea, "type", "veth", "peer", "name", &eb]);
        run(&["ip", "link", "set", &ea, "netns", a]);
        run(&["ip", "link", "set", &eb, "netns", b]);
        for (ns, dev, ip) in [(a, &ea, a_ip), (b, &eb, b_ip)] {
            exec(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", dev]);
            exec(ns, &["ip", "link", "set", dev, "up"]);
        }
    }
}

impl Drop for HomeRouter {
    fn drop(&mut self) {
        for ns in [&self.server, &self.router, &self.viewer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A server namespace and viewer namespaces each on a link of its own (no router, no NAT):
///
/// ```text
///  [server ns] 198.18.4N.1 --- 198.18.4N.2 [viewer ns N]     for N = 0, 1, ...
/// ```
///
/// [`Star::police`] caps what the server sends one viewer with an nftables policer (`limit rate over`), the
/// way a weak link drops what exceeds it; the server's end of each link sends packets one by one
/// (`gso_max_segs 1`: a UDP GSO batch is not policed as one packet).
pub struct Star {
    pub server: String,
    pub viewers: Vec<String>,
}

impl Star {
    pub fn new(viewers: usize) -> Self {
        assert!(available(), "network testbeds need root and nftables (make test installs nftables; CI runs as root)");
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}{}", std::process::id() % 100_000, N.fetch_add(1, Ordering::Relaxed));
        let star = Self { server: format!("gc{id}s"), viewers: (0..viewers).map(|i| format!("gc{id}v{i}")).collect() };
        for ns in std::iter::once(&star.server).chain(&star.viewers) {
            run(&["ip", "netns", "add", ns]);
            exec(ns, &["ip", "link", "set", "lo", "up"]);
        }
        for (i, v) in star.viewers.iter().enumerate() {
            let (near, far) = (format!("{}{i}", star.server), format!("{v}x"));
            run(&["ip", "link", "add", &near, "type", "veth", "peer", "name", &far]);
            run(&["ip", "link", "set", &near, "netns", &star.server]);
            run(&["ip", "link", "set", &far, "netns", v]);
            exec(&star.server, &["ip", "link", "set", &near, "gso_max_segs", "1"]);
            for (ns, dev, ip) in [(&star.server, &near, Self::server_ip(i)), (v, &far, Self::viewer_ip(i))] {
                exec(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", dev]);
                exec(ns, &["ip", "link", "set", dev, "up"]);
            }
        }
        star
    }

    /// The server's address on viewer `i`'s link.
    pub fn server_ip(i: usize) -> String {
        format!("198.18.{}.1", 40 + i)
    }

    fn viewer_ip(i: usize) -> String {
        format!("198.18.{}.2", 40 + i)
    }

    /// Caps the UDP viewer `i` receives at `kbit` kbit/s (what exceeds it is dropped, with a burst of
    /// ~50 ms: a link with little buffer), replacing any earlier cap; `None` lifts it.
    pub fn police(&self, i: usize, kbit: Option<u32>) {
        let ns = &self.viewers[i];
        let _ = Command::new("ip").args(["netns", "exec", ns, "nft", "delete", "table", "inet", "weak_link"]).output();
        if let Some(kbit) = kbit {
            let (rate, burst) = (kbit / 8, (kbit / 160).max(4));
            load_rules(
                ns,
                &format!(
                    "table inet weak_link {{\n chain input {{\n  type filter hook input priority 0;\n  \
                     meta l4proto udp limit rate over {rate} kbytes/second burst {burst} kbytes drop\n }}\n}}\n"
                ),
            );
        }
    }
}

impl Drop for Star {
    fn drop(&mut self) {
        for ns in std::iter::once(&self.server).chain(&self.viewers) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// `GET url` (TLS unchecked) with curl from namespace `ns`, as JSON (`Null` when it is not).
pub fn curl_json(ns: &str, url: &str) -> serde_json::Value {
    curl_json_with(ns, url, None)
}

/// [`curl_json`] with `Authorization: Bearer <token>`.
pub fn curl_json_with(ns: &str, url: &str, token: Option<&str>) -> serde_json::Value {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-sk", url]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.output().expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn load_rules(ns: &str, rules: &str) {
    let file = tempfile::NamedTempFile::new().expect("rules file");
    std::fs::write(file.path(), rules).expect("write rules");
    exec(ns, &["nft", "-f", file.path().to_str().expect("utf-8 path")]);
}

/// coturn, started for a test (in namespace `ns`, or here) on `ip:port` with `args` (`--stun-only`, or
/// `--use-auth-secret ...`), with a database of its own; killed on drop.
pub struct Coturn(std::process::Child, #[allow(dead_code)] tempfile::TempDir);

impl Coturn {
    pub fn start(ns: Option<&str>, ip: &str, port: u16, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "turnserver"]);
                c
            }
            None => Command::new("turnserver"),
        };
        let child = cmd
            .args(["-n", &format!("--listening-ip={ip}"), &format!("--listening-port={port}")])
            .args(["--no-tls", "--no-dtls", "--no-cli", "--fingerprint", "--log-file=stdout"])
            .args([
                "--min-port=49160",
                "--max-port=49260",
                &format!("--userdb={}", dir.path().join("turndb").display()),
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver runs (make test installs coturn)");
        std::thread::sleep(Duration::from_millis(500));
        Self(child, dir)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `glasscast serve` with `config` (TOML) as a process in namespace `ns`; killed on drop.
pub struct Glasscast {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Glasscast {
    pub fn start(ns: &str, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("glasscast.toml");
        let config = format!("{config}\n[server]\nstate_dir = \"{}\"\n", dir.path().join("state").display());
        std::fs::write(&cfg, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_glasscast"), "--config"])
            .arg(&cfg)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("glasscast starts");
        Self { child, _dir: dir }
    }

    /// Its admin token (generated into its state directory at start).
    pub fn admin_token(&self) -> String {
        let path = self._dir.path().join("state/auth/admin_token");
        std::fs::read_to_string(path).expect("admin token").trim().to_owned()
    }

    /// Its configuration file.
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("glasscast.toml")
    }

    /// `glasscast doctor` on its configuration, run in namespace `ns`: what it prints.
    pub fn doctor(&self, ns: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_glasscast"), "--config"])
            .arg(self.config_path())
            .arg("doctor")
            .output()
            .expect("doctor runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Its log so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    /// Waits up to 20 s until `url` (seen from namespace `from`) answers /readyz with 200.
    pub async fn wait_ready(&self, from: &str, base: &str) {
        let readyz = || async {
            Command::new("ip")
                .args(["netns", "exec", from, "curl", "-sfk", "-o", "/dev/null", &format!("{base}/readyz")])
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(super::eventually_async(20, readyz).await, "glasscast never became ready at {base}:\n{}", self.log());
    }
}

impl Drop for Glasscast {
    fn drop(&mut self) {
        // A test that failed shows what the server said.
        if std::thread::panicking() {
            eprintln!("glasscast's log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
