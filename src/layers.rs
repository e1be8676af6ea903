//! The layering rules, held on the import graph (issue 35): every `crate::` path in the sources (in `use`
//! trees, grouped ones expanded, in code, and in macro arguments), `super::` and `self::` resolved, and
//! each one followed through the crate's own re-exports (`pub use`) to where it really lives. A module's
//! layer is its first segment under `crate` (`media`, `http`, ...).
//!
//! The rules: `media` reaches neither `http` nor `auth` (nor axum/hyper, nor serde/utoipa: the API's JSON
//! types live at the boundary); `http` reaches no `media` (nor
//! GStreamer/str0m); `auth` reaches no `media`; `config` reaches nothing above the base (`host`, `ids`,
//! `net`, `push`), and the base reaches nothing above itself; `telemetry` reaches neither `session` nor `media`.
//! Inside `media`, each room ([`ROOMS`]) uses only the rooms it names. [`KNOWN`] lists what breaks them today, each entry
//! to go with issue 35's restructure: a new crossing fails the test, and so does an entry that no longer
//! happens (the list only shrinks).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// `(from layer, to layer)` that must never be an edge of the graph.
const NEVER: &[(&str, &str)] = &[
    ("media", "http"),
    ("media", "auth"),
    ("http", "media"),
    ("auth", "media"),
    ("telemetry", "session"),
    ("telemetry", "media"),
];

/// The base layer: modules that reach no other module of the crate (but each other).
const BASE: &[&str] = &["host", "ids", "net", "push"];

/// What `config` may reach: itself and the base layer.
const CONFIG_MAY: &[&str] = &["config", "host", "ids", "net", "push"];

/// External crates a layer must not use: (layer, crate roots).
const NEVER_CRATES: &[(&str, &[&str])] = &[
    ("media", &["axum", "hyper", "serde", "serde_json", "utoipa"]),
    ("http", &["gstreamer", "gst", "str0m", "gstreamer_webrtc", "gstreamer_sdp"]),
];

/// The rooms of `media` and which other rooms each may use (ARCHITECTURE.md's code map; each room's
/// `mod.rs` says why). Any room may use the media root's shared vocabulary (`media/mod.rs`, `handle.rs`,
/// `dtls.rs`); the root itself (the `Peer` interface) wraps the rooms and may use them all.
const ROOMS: &[(&str, &[&str])] = &[
    ("offer", &[]),
    ("source", &["ingest", "offer"]),
    ("encode", &["source", "forward"]),
    ("webrtcbin", &["offer", "encode"]),
    ("forward", &["offer", "encode"]),
    ("ingest", &["offer", "webrtcbin"]),
    ("tap", &["encode", "webrtcbin"]),
    ("stream", &["source", "encode", "webrtcbin", "forward", "ingest", "offer", "tap"]),
];

/// Crossings that exist today (file, the path it reaches), to be removed by issue 35's restructure.
const KNOWN: &[(&str, &str)] = &[];

/// A module path as its segments under `crate` (`["media", "forward", "tcp"]`).
type ModPath = Vec<String>;

/// The module a source file is (`src/media/forward/mod.rs` -> `media::forward`).
fn module_of(file: &Path, src: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("under src");
    let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = segs.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        segs.push(stem.to_owned());
    }
    segs
}

/// Every `.rs` file under `src/`.
fn sources(src: &Path) -> Vec<PathBuf> {
    let (mut todo, mut out) = (vec![src.to_path_buf()], Vec::new());
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("a source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// What one file refers to: absolute `crate` paths, external crate roots, and its re-exports.
#[derive(Default)]
struct Refs {
    /// The module (file module, then inline `mod`s) being read.
    module: ModPath,
    /// The file module's child modules: a path that starts with one is relative (`pub use child::Item`).
    children: BTreeSet<String>,
    paths: Vec<ModPath>,
    crates: BTreeSet<String>,
    /// `pub use` items: the re-exported name's full path -> what it names.
    reexports: Vec<(ModPath, ModPath)>,
}

impl Refs {
    /// `segs` made absolute (`crate::`, `super::`, `self::`), or `None` for an external or local path.
    fn absolute(&self, segs: &[String]) -> Option<ModPath> {
        let first = segs.first()?;
        let mut rest = match first.as_str() {
            "crate" => return Some(segs[1..].to_vec()),
            "self" => &segs[1..],
            "super" => segs,
            child if self.children.contains(child) => segs,
            _ => return None,
        };
        let mut base = self.module.clone();
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn note(&mut self, segs: Vec<String>) {
        match self.absolute(&segs) {
            Some(p) => self.paths.push(p),
            None => {
                if let Some(root) = segs.first().filter(|_| segs.len() > 1) {
                    self.crates.insert(root.clone());
                }
            }
        }
    }

    /// A `use` tree flattened into its paths (`prefix` so far); re-exports noted when `public`.
    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>, public: bool) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix, public);
                prefix.pop();
            }
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(t, prefix, public)),
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident.to_string(), None, public),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, &r.ident.to_string(), Some(r.rename.to_string()), public),
            syn::UseTree::Glob(_) => self.note(prefix.clone()),
        }
    }

    fn use_leaf(&mut self, prefix: &[String], name: &str, rename: Option<String>, public: bool) {
        let mut full = prefix.to_vec();
        if name != "self" {
            full.push(name.to_owned());
        }
        if public && let Some(target) = self.absolute(&full) {
            let mut exported = self.module.clone();
            exported.push(rename.unwrap_or_else(|| full.last().cloned().unwrap_or_default()));
            self.reexports.push((exported, target));
        }
        self.note(full);
    }

    /// `a :: b` sequences in a macro's or an attribute's tokens (`crate ::`, `super ::`, `self ::` and
    /// external crates' paths such as `serde::Serialize` in a `derive`).
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let TokenTree::Group(g) = &trees[i] {
                self.tokens(g.stream());
            }
            if let TokenTree::Ident(id) = &trees[i] {
                let mut segs = vec![id.to_string()];
                let mut j = i + 1;
                while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(n))) =
                    (trees.get(j), trees.get(j + 1), trees.get(j + 2))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    segs.push(n.to_string());
                    j += 3;
                }
                if segs.len() > 1 {
                    self.note(segs);
                }
                i = j;
                continue;
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Refs {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let public = !matches!(u.vis, syn::Visibility::Inherited);
        self.use_tree(&u.tree, &mut Vec::new(), public);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.note(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if let syn::Meta::List(list) = &a.meta {
            self.tokens(list.tokens.clone());
        }
        syn::visit::visit_attribute(self, a);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// Each file's references, read from `src/`.
fn read_all() -> Vec<(String, Refs)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    let modules: Vec<ModPath> = files.iter().map(|f| module_of(f, &src)).collect();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let module = module_of(&file, &src);
        let children = modules
            .iter()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(&module))
            .filter_map(|m| m.last().cloned())
            .collect();
        let mut refs = Refs { module, children, ..Refs::default() };
        refs.visit_file(&ast);
        out.push((file.strip_prefix(&src).expect("under src").display().to_string(), refs));
    }
    out
}

/// `path` and every path it leads to through re-exports (at most 8 hops).
fn paths_reached(path: &ModPath, reexports: &HashMap<ModPath, ModPath>) -> Vec<ModPath> {
    let mut paths = Vec::new();
    let mut at = path.clone();
    for _ in 0..8 {
        paths.push(at.clone());
        // The longest re-exported prefix of `at`.
        let hit = (1..=at.len()).rev().find_map(|n| reexports.get(&at[..n]).map(|t| (n, t)));
        let Some((n, target)) = hit else { break };
        let mut next = target.clone();
        next.extend(at[n..].iter().cloned());
        if next == at {
            break;
        }
        at = next;
    }
    paths
}

/// The room a `media` path is in (`media::forward::mux` -> `forward`), if any.
fn room(path: &[String]) -> Option<&str> {
    match path {
        [media, room, ..] if media == "media" => ROOMS.iter().find(|(r, _)| r == room).map(|(r, _)| *r),
        _ => None,
    }
}

/// Whether a reference from module `from` that reaches `to` breaks the rooms' rules.
fn breaks_room_rule(from: &[String], to: &[String]) -> bool {
    let (Some(a), Some(b)) = (room(from), room(to)) else { return false };
    a != b && !ROOMS.iter().any(|(r, may)| *r == a && may.contains(&b))
}

/// Every crossing of the rules: `(file, the path it names, "from -> to")`.
fn crossings() -> Vec<(String, String, String)> {
    let files = read_all();
    let reexports: HashMap<ModPath, ModPath> = files.iter().flat_map(|(_, r)| r.reexports.iter().cloned()).collect();
    let mut found = BTreeSet::new();
    for (file, refs) in &files {
        let Some(from) = refs.module.first().cloned() else { continue };
        for path in &refs.paths {
            let reached = paths_reached(path, &reexports);
            for to in reached.iter().filter(|to| breaks_room_rule(&refs.module, to)) {
                let rule = format!("room {} -> room {}", room(&refs.module).unwrap_or("?"), room(to).unwrap_or("?"));
                found.insert((file.clone(), path.join("::"), rule));
            }
            for to in reached.iter().filter_map(|p| p.first()) {
                let never = NEVER.contains(&(from.as_str(), to.as_str()));
                let config = from == "config" && !CONFIG_MAY.contains(&to.as_str());
                let base = BASE.contains(&from.as_str()) && !BASE.contains(&to.as_str());
                if never || config || base {
                    found.insert((file.clone(), path.join("::"), format!("{from} -> {to}")));
                }
            }
        }
        for (layer, crates) in NEVER_CRATES {
            for c in refs.crates.iter().filter(|c| from == *layer && crates.contains(&c.as_str())) {
                found.insert((file.clone(), c.clone(), format!("{from} -> crate {c}")));
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn the_layer_rules_hold_on_the_import_graph() {
    let found = crossings();
    let known = |f: &str, p: &str| KNOWN.iter().any(|(kf, kp)| *kf == f && *kp == p);
    let new: Vec<_> = found.iter().filter(|(f, p, _)| !known(f, p)).collect();
    let gone: Vec<_> = KNOWN.iter().filter(|(kf, kp)| !found.iter().any(|(f, p, _)| f == kf && p == kp)).collect();
    assert!(new.is_empty(), "layer rules broken:\n{}", lines(&new));
    assert!(gone.is_empty(), "fixed, so take them off KNOWN: {gone:?}");
}

fn lines(found: &[&(String, String, String)]) -> String {
    found.iter().map(|(f, p, rule)| format!("  {f}: crate::{p} ({rule})")).collect::<Vec<_>>().join("\n")
}

/// The checker sees what a text search misses: grouped imports, `super::` paths, macro arguments and a
/// re-export that leads into another layer.
#[test]
fn the_checker_finds_crossings_a_text_search_misses() {
    let text = r#"
        use crate::{ids::SessionId, session::{Role, TransportStats}};
        use super::super::session as s;
        mod inner { fn f() { tracing::info!(x = ?crate::media::PeerStats::default()); } }
        fn g() -> s::Role { crate::media::stream::X }
        pub use crate::media::Peer as Re;
        #[derive(serde::Serialize, utoipa::ToSchema)] struct S;
    "#;
    let ast = syn::parse_file(text).expect("parses");
    let mut refs = Refs { module: vec!["telemetry".into(), "scrape".into()], ..Refs::default() };
    refs.visit_file(&ast);
    let got: BTreeSet<String> = refs.paths.iter().map(|p| p.join("::")).collect();
    let paths = ["ids::SessionId", "session::Role", "session::TransportStats", "session", "media::PeerStats::default"];
    for want in paths.into_iter().chain(["media::stream::X"]) {
        assert!(got.contains(want), "{want} in {got:?}");
    }
    assert!(refs.crates.contains("serde") && refs.crates.contains("utoipa"), "{:?}", refs.crates);
    assert_eq!(
        refs.reexports,
        vec![(vec!["telemetry".into(), "scrape".into(), "Re".into()], vec!["media".into(), "Peer".into()])]
    );
    // Through a re-export: session::TransportStats is media's type.
    let reexports = HashMap::from([(
        vec!["session".to_owned(), "TransportStats".to_owned()],
        vec!["media".to_owned(), "PeerStats".to_owned()],
    )]);
    let reached = paths_reached(&vec!["session".into(), "TransportStats".into()], &reexports);
    let layers: Vec<&str> = reached.iter().filter_map(|p| p.first()).map(String::as_str).collect();
    assert_eq!(layers, ["session", "media"]);
}

/// A path relative to a child module (`pub use child::Item`, edition 2018) is resolved too, and a room
/// that reaches one it does not name breaks the rule, through a re-export as well.
#[test]
fn the_checker_follows_relative_re_exports_and_holds_the_rooms() {
    let text = "pub use stream::{StreamPipeline, encoded_video_chain}; use webrtcbin::viewer::IceSettings;";
    let ast = syn::parse_file(text).expect("parses");
    let children = ["stream".to_owned(), "webrtcbin".to_owned()].into();
    let mut refs = Refs { module: vec!["media".into()], children, ..Refs::default() };
    refs.visit_file(&ast);
    let got: BTreeSet<String> = refs.paths.iter().map(|p| p.join("::")).collect();
    assert!(got.contains("media::webrtcbin::viewer::IceSettings"), "{got:?}");
    let reexports: HashMap<ModPath, ModPath> = refs.reexports.into_iter().collect();
    let via_root = vec!["media".to_owned(), "StreamPipeline".to_owned()];
    let reached = paths_reached(&via_root, &reexports);
    assert_eq!(reached.last().map(|p| p.join("::")).as_deref(), Some("media::stream::StreamPipeline"));
    let offer = vec!["media".to_owned(), "offer".to_owned(), "negotiate".to_owned()];
    assert!(reached.iter().any(|to| breaks_room_rule(&offer, to)), "offer may not use stream");
    let stream = vec!["media".to_owned(), "stream".to_owned(), "build".to_owned()];
    assert!(!breaks_room_rule(&stream, &offer), "stream may use offer");
    assert!(!breaks_room_rule(&offer, &["media".to_owned(), "MediaError".to_owned()]), "the root's vocabulary");
}
