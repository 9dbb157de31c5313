#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::*;
use crate::registry::{BackendConfig, BackendType, DbEntry, ModelConfig};

const DEBOUNCE: Duration = Duration::from_millis(100);
/// Long enough for any event to have been debounced and delivered.
const QUIET: Duration = Duration::from_millis(300);
const PATIENCE: Duration = Duration::from_secs(10);

fn config(root: &Path) -> WatchConfig {
    let mut c = WatchConfig::new(root);
    c.debounce = DEBOUNCE;
    c.reconcile_every = Duration::from_secs(3600);
    c.root_retry = Duration::from_millis(200);
    c
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

/// A root and a sibling directory outside it, on the same filesystem.
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    (tmp, root, outside)
}

/// A readable summary of events: `+rel` for an upsert, `-rel` for a remove.
fn summary(events: &[FileEvent]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .map(|e| match e {
            FileEvent::Upsert { rel_path, .. } => format!("+{rel_path}"),
            FileEvent::Remove { rel_path } => format!("-{rel_path}"),
        })
        .collect();
    out.sort();
    out
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

/// Receives until `n` events arrived (or `PATIENCE` passed), then for `QUIET` more to catch any
/// extra event.
async fn recv_n(rx: &mut mpsc::Receiver<FileEvent>, n: usize) -> Vec<FileEvent> {
    let mut out = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => out.push(event),
            _ => break,
        }
    }
    while let Ok(Some(event)) = timeout(QUIET, rx.recv()).await {
        out.push(event);
    }
    out
}

/// Waits for the catch-up scan to have run.
async fn caught_up(watcher: &Watcher) {
    let deadline = Instant::now() + PATIENCE;
    while watcher.stats().reconciles == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start(
    cfg: WatchConfig,
    capacity: usize,
    known: &[&str],
) -> (Watcher, mpsc::Receiver<FileEvent>) {
    let (tx, rx) = mpsc::channel(capacity);
    let known: Vec<String> = known.iter().map(|s| (*s).to_owned()).collect();
    let watcher = Watcher::start(cfg, tx, known).unwrap();
    (watcher, rx)
}

/// Whether this process can be denied a read by file permissions (not root).
fn permissions_apply(dir: &Path) -> bool {
    let probe = dir.join("probe");
    fs::write(&probe, "x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    let denied = fs::File::open(&probe).is_err();
    fs::remove_file(&probe).unwrap();
    denied
}

fn entry(source_folder: Option<&str>, extensions: Option<Vec<&str>>) -> DbEntry {
    DbEntry {
        name: "db".to_owned(),
        path: PathBuf::from("/data/db"),
        source_folder: source_folder.map(PathBuf::from),
        source_type: "filesystem".to_owned(),
        auto_watch: true,
        watch_interval_secs: 42,
        model: None,
        recursive: false,
        file_extensions: extensions.map(|v| v.into_iter().map(str::to_owned).collect()),
        preprocessing_pipeline: None,
        created_at: None,
        last_sync: None,
        description: None,
        backend_type: BackendType::Json,
        backend_config: BackendConfig::default(),
        model_config: ModelConfig::default(),
        model_config_raw: None,
        workspace: None,
    }
}

#[test]
fn config_from_entry() {
    assert!(WatchConfig::from_entry(&entry(None, None)).is_none());

    let c = WatchConfig::from_entry(&entry(Some("/src"), None)).unwrap();
    assert_eq!(c.root, PathBuf::from("/src"));
    assert!(!c.recursive);
    assert_eq!(c.extensions, DEFAULT_EXTENSIONS);
    assert_eq!(c.reconcile_every, Duration::from_secs(42));
    assert_eq!(c.max_file_bytes, DEFAULT_MAX_FILE_BYTES);
    assert_eq!(c.debounce, DEFAULT_DEBOUNCE);
    assert_eq!(c.exclude, vec![PathBuf::from("/data/db")]);

    let c = WatchConfig::from_entry(&entry(Some("/src"), Some(vec!["md", " .TXT ", ".md", ""])));
    assert_eq!(c.unwrap().extensions, vec![".md", ".txt"]);
    let c = WatchConfig::from_entry(&entry(Some("/src"), Some(vec![])));
    assert_eq!(c.unwrap().extensions, DEFAULT_EXTENSIONS);

    let c = WatchConfig::new("/r");
    assert!(c.watches_name("Notes.MD"));
    assert!(c.watches_name("a.markdown"));
    assert!(!c.watches_name("a.mdx"));
    assert!(!c.watches_name(".md"));
}

#[test]
fn binary_detection() {
    assert!(!scan::looks_binary(b"plain text\n", false));
    assert!(scan::looks_binary(b"nul\0byte", false));
    assert!(scan::looks_binary(b"caf\xe9", false));
    // A character cut by the end of a truncated head is fine; at the end of a file it is not.
    assert!(!scan::looks_binary(
        "caf\u{e9}".as_bytes().split_last().unwrap().1,
        true
    ));
    assert!(scan::looks_binary(
        "caf\u{e9}".as_bytes().split_last().unwrap().1,
        false
    ));
}

#[test]
fn scan_finds_eligible_files_and_skips_each_kind() {
    let (_tmp, root, outside) = dirs();
    write(&root.join("a.md"), "# a\n");
    write(&root.join("UPPER.MD"), "upper\n");
    write(&root.join("notes/b.txt"), "b\n");
    write(&root.join("notes/deep/c.rst"), "c\n");
    write(&root.join(".hidden.md"), "h\n");
    write(&root.join(".git/config.md"), "g\n");
    write(&root.join("code.rs"), "fn main() {}\n");
    write(&root.join("big.md"), "x".repeat(10_000));
    write(&root.join("nul.md"), b"text\0more");
    write(&root.join("latin1.md"), b"caf\xe9\n");
    // 8191 ASCII bytes then a two-byte character: the 8 KiB head ends inside it.
    let mut split = "x".repeat(scan::SNIFF_BYTES - 1);
    split.push('é');
    write(&root.join("split.md"), split);
    symlink(root.join("nowhere.md"), root.join("broken.md")).unwrap();
    symlink(root.join("self.md"), root.join("self.md")).unwrap();
    symlink("..", root.join("notes/up")).unwrap();
    symlink("a.md", root.join("alias.md")).unwrap();
    write(&outside.join("x.md"), "outside\n");
    symlink(outside.join("x.md"), root.join("outside.md")).unwrap();
    symlink(&outside, root.join("outside_dir")).unwrap();
    symlink("notes", root.join("notes_link")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo.md"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    write(&root.join("workdir/kv_store.md"), "{}");
    write(&root.join("locked.md"), "secret\n");
    fs::set_permissions(root.join("locked.md"), fs::Permissions::from_mode(0o000)).unwrap();
    let enforced = permissions_apply(&outside);

    let mut cfg = config(&root);
    cfg.max_file_bytes = 9_000;
    cfg.exclude = vec![root.join("workdir")];
    let (files, skips) = scan(&cfg).unwrap();

    let mut eligible: Vec<&str> = files.iter().map(|f| f.rel_path.as_str()).collect();
    eligible.sort();
    let mut expected = vec![
        "UPPER.MD",
        "a.md",
        "alias.md",
        "notes/b.txt",
        "notes/deep/c.rst",
        "split.md",
    ];
    if !enforced {
        // Running as root: permissions do not stop reads; unreadable files are covered by
        // the unprivileged branch below (and by `evaluate`'s error mapping).
        expected.push("locked.md");
        expected.sort();
    }
    assert_eq!(eligible, expected);
    let a = files.iter().find(|f| f.rel_path == "a.md").unwrap();
    assert_eq!(a.abs_path, root.join("a.md"));
    assert_eq!(a.size, 4);
    assert!(a.mtime_ns > 0);
    let alias = files.iter().find(|f| f.rel_path == "alias.md").unwrap();
    assert_eq!(alias.abs_path, root.join("alias.md"));
    assert_eq!(alias.size, 4);

    let reasons: BTreeMap<&str, &str> = skips
        .iter()
        .map(|s| (s.rel_path.as_str(), s.reason.code()))
        .collect();
    let mut want = BTreeMap::from([
        (".hidden.md", "hidden"),
        (".git", "hidden"),
        ("code.rs", "extension_not_watched"),
        ("big.md", "too_large"),
        ("nul.md", "binary"),
        ("latin1.md", "binary"),
        ("broken.md", "broken_symlink"),
        ("self.md", "symlink_loop"),
        ("notes/up", "symlink_loop"),
        ("outside.md", "symlink_outside_root"),
        ("outside_dir", "symlink_outside_root"),
        ("notes_link", "symlink_to_directory"),
        ("fifo.md", "not_regular_file"),
        ("workdir", "excluded"),
    ]);
    if enforced {
        want.insert("locked.md", "unreadable");
    }
    assert_eq!(reasons, want);
    let big = skips.iter().find(|s| s.rel_path == "big.md").unwrap();
    assert_eq!(
        big.reason,
        SkipReason::TooLarge {
            size: 10_000,
            limit: 9_000
        }
    );
    assert_eq!(big.path, root.join("big.md"));

    // Non-recursive: subfolders are not entered (and not reported as skipped).
    cfg.recursive = false;
    let (files, skips) = scan(&cfg).unwrap();
    assert!(files.iter().all(|f| !f.rel_path.contains('/')));
    assert!(files.iter().any(|f| f.rel_path == "a.md"));
    assert!(skips.iter().all(|s| !s.rel_path.contains('/')));

    // A missing root is an error, not an empty folder.
    let missing = config(&root.join("nope"));
    assert!(matches!(
        scan(&missing),
        Err(WatchError::RootUnavailable { .. })
    ));
}

#[tokio::test]
async fn catch_up_upserts_eligible_files_and_removes_vanished_known_ones() {
    let (_tmp, root, _outside) = dirs();
    write(&root.join("a.md"), "alpha\n");
    write(&root.join("sub/b.md"), "beta\n");
    write(&root.join("image.png"), b"\x89PNG\0");
    write(&root.join("bin.md"), b"\0\0");
    let (watcher, mut rx) = start(
        config(&root),
        16,
        &["a.md", "gone.md", "sub/old.md", "bin.md", "image.png"],
    );
    let events = recv_n(&mut rx, 6).await;
    assert_eq!(
        summary(&events),
        sorted(&[
            "+a.md",
            "+sub/b.md",
            "-gone.md",
            "-sub/old.md",
            "-bin.md",
            "-image.png"
        ])
    );
    let upsert = events
        .iter()
        .find(|e| e.rel_path() == "a.md")
        .cloned()
        .unwrap();
    let FileEvent::Upsert { abs_path, size, .. } = upsert else {
        panic!("not an upsert: {upsert:?}");
    };
    assert_eq!(abs_path, root.join("a.md"));
    assert_eq!(size, 6);
    let stats = watcher.stats();
    assert_eq!(stats.tracked, 2);
    assert!(stats.root_available);
    watcher.stop().await;
}

#[tokio::test]
async fn create_modify_delete_rename_give_debounced_events() {
    let (_tmp, root, _outside) = dirs();
    let (watcher, mut rx) = start(config(&root), 16, &[]);
    caught_up(&watcher).await;

    // Create, with several writes: one event.
    let a = root.join("a.md");
    fs::write(&a, "one").unwrap();
    fs::write(&a, "one two").unwrap();
    fs::write(&a, "one two three").unwrap();
    let events = recv_n(&mut rx, 1).await;
    assert_eq!(summary(&events), ["+a.md"]);
    assert!(matches!(events[0], FileEvent::Upsert { size: 13, .. }));

    // Modify.
    fs::write(&a, "changed").unwrap();
    let events = recv_n(&mut rx, 1).await;
    assert!(matches!(events[..], [FileEvent::Upsert { size: 7, .. }]));

    // Rename: remove old + upsert new.
    fs::rename(&a, root.join("b.md")).unwrap();
    assert_eq!(summary(&recv_n(&mut rx, 2).await), ["+b.md", "-a.md"]);

    // Delete.
    fs::remove_file(root.join("b.md")).unwrap();
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["-b.md"]);

    // Create + delete within the window: nothing. Ineligible files: nothing.
    fs::write(root.join("tmp.md"), "x").unwrap();
    fs::remove_file(root.join("tmp.md")).unwrap();
    fs::write(root.join("ignored.rs"), "x").unwrap();
    fs::write(root.join(".swap.md"), "x").unwrap();
    assert_eq!(summary(&recv_n(&mut rx, 0).await), Vec::<String>::new());
    watcher.stop().await;
}

#[tokio::test]
async fn directories_moved_in_and_out_give_the_events_of_their_files() {
    let (_tmp, root, outside) = dirs();
    let (watcher, mut rx) = start(config(&root), 16, &[]);
    caught_up(&watcher).await;

    // A directory moved in: its files; moved out: their removal.
    write(&outside.join("dir/x.md"), "x");
    write(&outside.join("dir/deeper/y.txt"), "y");
    fs::rename(outside.join("dir"), root.join("dir")).unwrap();
    assert_eq!(
        summary(&recv_n(&mut rx, 2).await),
        ["+dir/deeper/y.txt", "+dir/x.md"]
    );
    // New files in the moved-in directory are watched.
    write(&root.join("dir/deeper/z.md"), "z");
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+dir/deeper/z.md"]);
    fs::rename(root.join("dir"), outside.join("dir2")).unwrap();
    assert_eq!(
        summary(&recv_n(&mut rx, 3).await),
        ["-dir/deeper/y.txt", "-dir/deeper/z.md", "-dir/x.md"]
    );

    // Renamed inside the root: the old paths go, the new ones come.
    write(&root.join("d1/x.md"), "x");
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+d1/x.md"]);
    fs::rename(root.join("d1"), root.join("d2")).unwrap();
    assert_eq!(summary(&recv_n(&mut rx, 2).await), ["+d2/x.md", "-d1/x.md"]);
    fs::remove_dir_all(root.join("d2")).unwrap();
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["-d2/x.md"]);
    watcher.stop().await;
}

#[tokio::test]
async fn a_file_that_turns_binary_is_removed_and_comes_back_as_text() {
    let (_tmp, root, _outside) = dirs();
    let (watcher, mut rx) = start(config(&root), 16, &[]);
    caught_up(&watcher).await;
    write(&root.join("c.md"), "text");
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+c.md"]);
    fs::write(root.join("c.md"), b"bin\0ary").unwrap();
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["-c.md"]);
    fs::write(root.join("c.md"), "text again").unwrap();
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+c.md"]);

    watcher.stop().await;
}

#[tokio::test]
async fn a_burst_coalesces_to_one_event_per_file_while_the_consumer_is_paused() {
    let (_tmp, root, _outside) = dirs();
    let mut cfg = config(&root);
    // Generous, so that no file settles between two of its writes on a slow machine.
    cfg.debounce = Duration::from_millis(300);
    let (watcher, mut rx) = start(cfg, 8, &[]);
    caught_up(&watcher).await;

    // The consumer does not read (a paused database): 2,000 writes to 200 files.
    for i in 0..200 {
        for round in 0..10 {
            fs::write(root.join(format!("f{i:03}.md")), format!("{i} {round}")).unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    let stats = watcher.stats();
    assert!(
        stats.pending <= 200,
        "at most one pending event per file, got {}",
        stats.pending
    );

    // Resume: every file exactly once, with its final content.
    let events = recv_n(&mut rx, 200).await;
    assert_eq!(events.len(), 200, "{:?}", summary(&events));
    let names: BTreeSet<&str> = events.iter().map(FileEvent::rel_path).collect();
    assert_eq!(names.len(), 200);
    for event in &events {
        let FileEvent::Upsert { abs_path, size, .. } = event else {
            panic!("unexpected {event:?}");
        };
        assert_eq!(*size, fs::metadata(abs_path).unwrap().len());
    }
    assert_eq!(watcher.stats().pending, 0);
    watcher.stop().await;
}

#[tokio::test]
async fn reconcile_catches_changes_that_gave_no_event() {
    let (_tmp, root, outside) = dirs();
    write(&root.join("a.md"), "before");
    // A hard link outside the root: writes through it give no event in the root.
    fs::hard_link(root.join("a.md"), outside.join("a-link.md")).unwrap();
    let (watcher, mut rx) = start(config(&root), 16, &[]);
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+a.md"]);

    fs::write(outside.join("a-link.md"), "after, longer").unwrap();
    assert!(recv_n(&mut rx, 0).await.is_empty(), "no event expected");
    watcher.reconcile_now();
    let events = recv_n(&mut rx, 1).await;
    assert!(
        matches!(&events[..], [FileEvent::Upsert { rel_path, size: 13, .. }] if rel_path == "a.md"),
        "{events:?}"
    );
    // Nothing changed since: a further reconcile reports nothing.
    watcher.reconcile_now();
    assert!(recv_n(&mut rx, 0).await.is_empty());
    watcher.stop().await;

    // The periodic reconcile does the same on its own.
    let mut cfg = config(&root);
    cfg.reconcile_every = Duration::from_millis(300);
    let (watcher, mut rx) = start(cfg, 16, &["a.md"]);
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+a.md"]);
    fs::write(outside.join("a-link.md"), "periodic").unwrap();
    let events = recv_n(&mut rx, 1).await;
    assert!(
        matches!(&events[..], [FileEvent::Upsert { size: 8, .. }]),
        "{events:?}"
    );
    watcher.stop().await;
}

#[tokio::test]
async fn non_recursive_mode_ignores_subfolders() {
    let (_tmp, root, _outside) = dirs();
    write(&root.join("a.md"), "a");
    write(&root.join("sub/b.md"), "b");
    let mut cfg = config(&root);
    cfg.recursive = false;
    let (watcher, mut rx) = start(cfg, 16, &["sub/b.md"]);
    // Known below a subfolder: no longer watched, so removed.
    assert_eq!(summary(&recv_n(&mut rx, 2).await), ["+a.md", "-sub/b.md"]);

    write(&root.join("sub/c.md"), "c");
    fs::create_dir(root.join("other")).unwrap();
    write(&root.join("other/d.md"), "d");
    write(&root.join("e.md"), "e");
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+e.md"]);
    watcher.reconcile_now();
    assert!(recv_n(&mut rx, 0).await.is_empty());
    watcher.stop().await;
}

#[tokio::test]
async fn a_missing_root_is_retried_and_never_causes_removals() {
    let (tmp, _root, _outside) = dirs();
    let root = tmp.path().join("later");
    let (watcher, mut rx) = start(config(&root), 16, &["kept.md"]);
    assert!(recv_n(&mut rx, 0).await.is_empty());
    assert!(!watcher.stats().root_available);

    // The root appears: catch-up.
    write(&root.join("a.md"), "a");
    assert_eq!(summary(&recv_n(&mut rx, 2).await), ["+a.md", "-kept.md"]);
    write(&root.join("b.md"), "b");
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+b.md"]);

    // The root goes away (unmounted, deleted): nothing is removed.
    fs::remove_dir_all(&root).unwrap();
    assert!(recv_n(&mut rx, 0).await.is_empty());
    assert!(!watcher.stats().root_available);

    // It comes back with different content: reconciled.
    write(&root.join("b.md"), "b");
    write(&root.join("c.md"), "c");
    // b.md is a new file (new inode): reported again; the pipeline's content hash dedups it.
    assert_eq!(
        summary(&recv_n(&mut rx, 3).await),
        ["+b.md", "+c.md", "-a.md"]
    );
    write(&root.join("d.md"), "d");
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+d.md"]);
    watcher.stop().await;
}

#[tokio::test]
async fn skips_are_logged_once_and_unreadable_files_are_kept() {
    let (_tmp, root, outside) = dirs();
    write(&root.join("bin.md"), b"\0");
    write(&root.join("code.rs"), "x");
    write(&root.join("ok.md"), "ok");
    let (watcher, mut rx) = start(config(&root), 16, &[]);
    assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+ok.md"]);
    assert_eq!(watcher.stats().skips_logged, 2);
    watcher.reconcile_now();
    watcher.reconcile_now();
    fs::write(root.join("code.rs"), "changed").unwrap();
    assert!(recv_n(&mut rx, 0).await.is_empty());
    assert_eq!(watcher.stats().skips_logged, 2);

    if permissions_apply(&outside) {
        // Unreadable: logged, and the document is kept (not removed).
        fs::set_permissions(root.join("ok.md"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::write(root.join("bin.md"), b"\0\0").unwrap();
        assert!(recv_n(&mut rx, 0).await.is_empty());
        watcher.reconcile_now();
        assert!(recv_n(&mut rx, 0).await.is_empty());
        assert_eq!(watcher.stats().skips_logged, 3);
        assert_eq!(watcher.stats().tracked, 1);
        fs::set_permissions(root.join("ok.md"), fs::Permissions::from_mode(0o644)).unwrap();

        // An unreadable directory: its files are kept too.
        write(&root.join("locked/in.md"), "in");
        assert_eq!(summary(&recv_n(&mut rx, 1).await), ["+locked/in.md"]);
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        assert!(recv_n(&mut rx, 0).await.is_empty());
        watcher.reconcile_now();
        assert!(recv_n(&mut rx, 0).await.is_empty());
        assert_eq!(watcher.stats().tracked, 2);
        assert_eq!(watcher.stats().skips_logged, 4);
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    watcher.stop().await;
}

#[tokio::test]
async fn a_symlinked_file_follows_its_target() {
    let (_tmp, root, _outside) = dirs();
    write(&root.join("real.md"), "real");
    symlink("real.md", root.join("alias.md")).unwrap();
    let (watcher, mut rx) = start(config(&root), 16, &[]);
    assert_eq!(
        summary(&recv_n(&mut rx, 2).await),
        ["+alias.md", "+real.md"]
    );
    fs::write(root.join("real.md"), "real, changed").unwrap();
    assert_eq!(
        summary(&recv_n(&mut rx, 2).await),
        ["+alias.md", "+real.md"]
    );
    fs::remove_file(root.join("real.md")).unwrap();
    assert_eq!(
        summary(&recv_n(&mut rx, 2).await),
        ["-alias.md", "-real.md"]
    );
    watcher.stop().await;
}

#[tokio::test]
async fn the_watcher_ends_when_stopped_dropped_or_the_consumer_leaves() {
    let (_tmp, root, _outside) = dirs();
    let (watcher, _rx) = start(config(&root), 4, &[]);
    caught_up(&watcher).await;
    timeout(Duration::from_secs(5), watcher.stop())
        .await
        .expect("stop returns");

    let (watcher, rx) = start(config(&root), 4, &[]);
    caught_up(&watcher).await;
    drop(rx);
    write(&root.join("a.md"), "a");
    tokio::time::sleep(QUIET).await;
    let task = watcher.task.as_ref().unwrap();
    assert!(
        task.is_finished(),
        "the task ends when the receiver is gone"
    );
    drop(watcher);

    let (tx, _rx) = mpsc::channel(1);
    let outside_runtime = std::thread::spawn(move || {
        Watcher::start(config(Path::new("/")), tx, Vec::new()).map(|_| ())
    })
    .join()
    .unwrap();
    assert!(matches!(outside_runtime, Err(WatchError::NoRuntime)));
}
