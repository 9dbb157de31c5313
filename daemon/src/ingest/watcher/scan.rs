//! The filters and the walk: which files are eligible and, for the others, why not.
//!
//! Everything here is synchronous (it runs on blocking threads) and never panics on anything the
//! filesystem does: an error is a [`SkipReason`], a vanished path is [`Class::Missing`].

use std::fmt;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::{WatchConfig, WatchError};

/// How much of a file is read to decide whether it is text.
pub(super) const SNIFF_BYTES: usize = 8 * 1024;

/// An eligible file found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// Relative to the root, `/`-separated.
    pub rel_path: String,
    /// The root as configured joined with `rel_path`.
    pub abs_path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
}

/// A path that was not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Absolute (the configured root joined with the relative path).
    pub path: PathBuf,
    /// Relative to the root, `/`-separated (lossy for a name that is not UTF-8).
    pub rel_path: String,
    pub reason: SkipReason,
}

/// Why a path is not ingested. [`SkipReason::code`] is the stable `reason` field of the
/// `file_skipped` log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A component of the path starts with `.` (hidden directories are not entered).
    Hidden,
    /// The database's own working directory.
    Excluded,
    /// The name does not end with a watched extension.
    ExtensionNotWatched,
    /// A FIFO, socket, device, or a symlink to one.
    NotRegularFile,
    /// Larger than `max_file_bytes`.
    TooLarge { size: u64, limit: u64 },
    /// A NUL byte or invalid UTF-8 in the first 8 KiB.
    Binary,
    /// Permission denied or an I/O error (a directory: its files are kept as they were).
    Unreadable { error: String },
    /// A symlink that resolves through itself (ELOOP), or a symlinked directory containing the
    /// link.
    SymlinkLoop,
    /// A symlink whose target lies outside the root.
    SymlinkOutsideRoot,
    /// A symlink to a directory inside the root: not entered, the directory's files are reached
    /// through their real path.
    SymlinkToDirectory,
    /// A symlink whose target does not exist.
    BrokenSymlink,
    /// A file name that is not UTF-8 (it could not be a LightRAG `file_path`).
    NonUtf8Name,
}

impl SkipReason {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::Hidden => "hidden",
            SkipReason::Excluded => "excluded",
            SkipReason::ExtensionNotWatched => "extension_not_watched",
            SkipReason::NotRegularFile => "not_regular_file",
            SkipReason::TooLarge { .. } => "too_large",
            SkipReason::Binary => "binary",
            SkipReason::Unreadable { .. } => "unreadable",
            SkipReason::SymlinkLoop => "symlink_loop",
            SkipReason::SymlinkOutsideRoot => "symlink_outside_root",
            SkipReason::SymlinkToDirectory => "symlink_to_directory",
            SkipReason::BrokenSymlink => "broken_symlink",
            SkipReason::NonUtf8Name => "non_utf8_name",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Hidden => f.write_str("hidden path"),
            SkipReason::Excluded => f.write_str("the database's working directory"),
            SkipReason::ExtensionNotWatched => f.write_str("extension not watched"),
            SkipReason::NotRegularFile => f.write_str("not a regular file"),
            SkipReason::TooLarge { size, limit } => {
                write!(f, "too large: {size} bytes, limit {limit}")
            }
            SkipReason::Binary => f.write_str("binary content (NUL byte or invalid UTF-8)"),
            SkipReason::Unreadable { error } => write!(f, "unreadable: {error}"),
            SkipReason::SymlinkLoop => f.write_str("symlink loop"),
            SkipReason::SymlinkOutsideRoot => f.write_str("symlink to outside the source folder"),
            SkipReason::SymlinkToDirectory => f.write_str("symlink to a directory (not followed)"),
            SkipReason::BrokenSymlink => f.write_str("broken symlink"),
            SkipReason::NonUtf8Name => f.write_str("file name is not UTF-8"),
        }
    }
}

impl Skip {
    /// Logs the skip (`event = "file_skipped"`; each skip once, so INFO is not noisy): DEBUG
    /// only for the database's own working directory inside the folder, WARN for what a user
    /// probably wants to fix (unreadable, symlink loops, broken or outside links), INFO for
    /// the rest (hidden, extension not watched, binary, too large…).
    pub fn log(&self) {
        let path = self.path.display();
        let reason = self.reason.code();
        let detail = &self.reason;
        match self.reason {
            SkipReason::Excluded => {
                tracing::debug!(event = "file_skipped", path = %path, reason, %detail, "file skipped");
            }
            SkipReason::Unreadable { .. }
            | SkipReason::SymlinkLoop
            | SkipReason::SymlinkOutsideRoot
            | SkipReason::BrokenSymlink => {
                tracing::warn!(event = "file_skipped", path = %path, reason, %detail, "file skipped");
            }
            SkipReason::Hidden
            | SkipReason::ExtensionNotWatched
            | SkipReason::NotRegularFile
            | SkipReason::TooLarge { .. }
            | SkipReason::Binary
            | SkipReason::SymlinkToDirectory
            | SkipReason::NonUtf8Name => {
                tracing::info!(event = "file_skipped", path = %path, reason, %detail, "file skipped");
            }
        }
    }
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fingerprint {
    pub size: u64,
    pub mtime_ns: i128,
    pub dev: u64,
    pub ino: u64,
}

impl Fingerprint {
    pub fn of(meta: &Metadata) -> Fingerprint {
        Fingerprint {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The verdict on one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Class {
    /// A real directory (not a symlink).
    Dir,
    /// Passes every filter checked so far. `link_target` is the target's relative path when
    /// the path is a symlink to a file inside the root.
    Candidate {
        fp: Fingerprint,
        link_target: Option<String>,
    },
    Skipped {
        reason: SkipReason,
        fp: Option<Fingerprint>,
    },
    /// Not there (or not part of the watched tree).
    Missing,
}

impl Class {
    fn skipped(reason: SkipReason) -> Class {
        Class::Skipped { reason, fp: None }
    }
}

/// A root that exists and can be read, with what the filters need.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub cfg: Arc<WatchConfig>,
    /// The root, symlinks resolved: targets must lie under it.
    pub canon_root: PathBuf,
    /// (dev, ino) of the root directory: a replaced root needs its watches set up again.
    pub root_id: (u64, u64),
    /// Excluded directories, relative to the root.
    excluded: Vec<String>,
}

impl Ctx {
    /// Checks that the root is a readable directory.
    pub fn open(cfg: Arc<WatchConfig>) -> Result<Ctx, WatchError> {
        let unavailable = |error: io::Error| WatchError::RootUnavailable {
            root: cfg.root.clone(),
            error,
        };
        let meta = fs::metadata(&cfg.root).map_err(unavailable)?;
        if !meta.is_dir() {
            return Err(unavailable(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        fs::read_dir(&cfg.root).map_err(unavailable)?;
        let canon_root = fs::canonicalize(&cfg.root).map_err(unavailable)?;
        let mut excluded = Vec::new();
        for dir in &cfg.exclude {
            let abs = cfg.root.join(dir);
            let rel = match abs.strip_prefix(&cfg.root) {
                Ok(rel) => Some(rel.to_path_buf()),
                Err(_) => fs::canonicalize(&abs)
                    .ok()
                    .and_then(|c| c.strip_prefix(&canon_root).ok().map(Path::to_path_buf)),
            };
            if let Some(rel) = rel.as_deref().and_then(rel_string)
                && !rel.is_empty()
            {
                excluded.push(rel);
            }
        }
        Ok(Ctx {
            root_id: (meta.dev(), meta.ino()),
            cfg,
            canon_root,
            excluded,
        })
    }

    pub fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.cfg.root.clone()
        } else {
            self.cfg.root.join(rel)
        }
    }

    pub fn is_excluded(&self, rel: &str) -> bool {
        self.excluded.iter().any(|e| under(rel, e))
    }
}

/// `rel` is `prefix` or lies below it (`prefix` empty: everything).
pub(super) fn under(rel: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || (rel.starts_with(prefix)
            && (rel.len() == prefix.len() || rel.as_bytes().get(prefix.len()) == Some(&b'/')))
}

/// A relative path as a `/`-separated string: only normal UTF-8 components.
pub(super) fn rel_string(rel: &Path) -> Option<String> {
    let mut out = String::new();
    for component in rel.components() {
        let Component::Normal(name) = component else {
            return None;
        };
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(name.to_str()?);
    }
    Some(out)
}

/// A well-formed relative path: non-empty segments, none `.` or `..`, no leading `/`.
pub(super) fn valid_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.contains('\0')
        && rel
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

pub(super) fn is_hidden_rel(rel: &str) -> bool {
    rel.split('/').any(|seg| seg.starts_with('.'))
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn is_eloop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::ELOOP as i32)
}

fn unreadable(e: &io::Error) -> SkipReason {
    SkipReason::Unreadable {
        error: e.to_string(),
    }
}

/// Classifies `abs` (= root/`rel`, whose parent is a real directory inside the root) by name
/// and metadata only: no content is read.
pub(super) fn classify(ctx: &Ctx, abs: &Path, rel: &str, name: &str) -> Class {
    if name.starts_with('.') {
        return Class::skipped(SkipReason::Hidden);
    }
    if ctx.is_excluded(rel) {
        return Class::skipped(SkipReason::Excluded);
    }
    let lmeta = match fs::symlink_metadata(abs) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Class::Missing,
        Err(e) => return Class::skipped(unreadable(&e)),
    };
    if lmeta.is_dir() {
        return Class::Dir;
    }
    let watched = ctx.cfg.watches_name(name);
    let (meta, link_target) = if lmeta.file_type().is_symlink() {
        match fs::metadata(abs) {
            Ok(m) if m.is_dir() => return classify_dir_link(ctx, abs, rel),
            Ok(_) if !watched => return Class::skipped(SkipReason::ExtensionNotWatched),
            Ok(m) => {
                let canon = match fs::canonicalize(abs) {
                    Ok(c) => c,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Class::Missing,
                    Err(e) => return Class::skipped(unreadable(&e)),
                };
                let Ok(target) = canon.strip_prefix(&ctx.canon_root) else {
                    return Class::skipped(SkipReason::SymlinkOutsideRoot);
                };
                (m, rel_string(target))
            }
            Err(e) if is_eloop(&e) => return Class::skipped(SkipReason::SymlinkLoop),
            Err(_) if !watched => return Class::skipped(SkipReason::ExtensionNotWatched),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Class::skipped(SkipReason::BrokenSymlink);
            }
            Err(e) => return Class::skipped(unreadable(&e)),
        }
    } else if !watched {
        return Class::skipped(SkipReason::ExtensionNotWatched);
    } else {
        (lmeta, None)
    };
    if !meta.is_file() {
        return Class::skipped(SkipReason::NotRegularFile);
    }
    let fp = Fingerprint::of(&meta);
    if meta.len() > ctx.cfg.max_file_bytes {
        return Class::Skipped {
            reason: SkipReason::TooLarge {
                size: meta.len(),
                limit: ctx.cfg.max_file_bytes,
            },
            fp: Some(fp),
        };
    }
    Class::Candidate { fp, link_target }
}

/// A symlink whose target is a directory: never entered; says why.
fn classify_dir_link(ctx: &Ctx, abs: &Path, rel: &str) -> Class {
    let canon = match fs::canonicalize(abs) {
        Ok(c) => c,
        Err(e) if is_eloop(&e) => return Class::skipped(SkipReason::SymlinkLoop),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Class::Missing,
        Err(e) => return Class::skipped(unreadable(&e)),
    };
    let parent_rel = rel.rsplit_once('/').map_or("", |(parent, _)| parent);
    let link_dir = ctx.canon_root.join(parent_rel);
    if link_dir.starts_with(&canon) {
        Class::skipped(SkipReason::SymlinkLoop)
    } else if canon.starts_with(&ctx.canon_root) {
        Class::skipped(SkipReason::SymlinkToDirectory)
    } else {
        Class::skipped(SkipReason::SymlinkOutsideRoot)
    }
}

/// Opens a candidate and reads its first 8 KiB: the full verdict. The fingerprint returned is
/// the opened file's.
pub(super) fn sniff(ctx: &Ctx, abs: &Path, link_target: Option<String>) -> Class {
    // O_NONBLOCK: a file swapped for a FIFO since it was classified must not block us.
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(abs)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Class::Missing,
        Err(e) if is_eloop(&e) => return Class::skipped(SkipReason::SymlinkLoop),
        Err(e) => return Class::skipped(unreadable(&e)),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Class::skipped(unreadable(&e)),
    };
    if !meta.is_file() {
        return Class::skipped(SkipReason::NotRegularFile);
    }
    let fp = Fingerprint::of(&meta);
    if meta.len() > ctx.cfg.max_file_bytes {
        return Class::Skipped {
            reason: SkipReason::TooLarge {
                size: meta.len(),
                limit: ctx.cfg.max_file_bytes,
            },
            fp: Some(fp),
        };
    }
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    if let Err(e) = (&file).take(SNIFF_BYTES as u64).read_to_end(&mut head) {
        return Class::skipped(unreadable(&e));
    }
    if looks_binary(&head, head.len() == SNIFF_BYTES) {
        return Class::Skipped {
            reason: SkipReason::Binary,
            fp: Some(fp),
        };
    }
    Class::Candidate { fp, link_target }
}

/// A NUL byte, or invalid UTF-8 other than a character cut by the end of a truncated head.
pub(super) fn looks_binary(head: &[u8], truncated: bool) -> bool {
    if memchr::memchr(0, head).is_some() {
        return true;
    }
    match std::str::from_utf8(head) {
        Ok(_) => false,
        Err(e) => !(truncated && e.error_len().is_none()),
    }
}

/// The verdict on one relative path by name and metadata, as the walk would give it. A path the
/// walk would not reach (through a symlinked directory, below a subdirectory in non-recursive
/// mode, malformed) is `Missing`.
pub(super) fn locate(ctx: &Ctx, rel: &str) -> Class {
    if !valid_rel(rel) {
        return Class::Missing;
    }
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if !parent.is_empty() {
        if !ctx.cfg.recursive {
            return Class::Missing;
        }
        if is_hidden_rel(parent) {
            return Class::skipped(SkipReason::Hidden);
        }
        if ctx.is_excluded(parent) {
            return Class::skipped(SkipReason::Excluded);
        }
        match fs::canonicalize(ctx.abs(parent)) {
            Ok(canon) if canon == ctx.canon_root.join(parent) => {}
            _ => return Class::Missing,
        }
    }
    classify(ctx, &ctx.abs(rel), rel, name)
}

/// The full verdict on one relative path: [`locate`], then the content check.
pub(super) fn evaluate(ctx: &Ctx, rel: &str) -> Class {
    match locate(ctx, rel) {
        Class::Candidate { link_target, .. } => sniff(ctx, &ctx.abs(rel), link_target),
        other => other,
    }
}

/// What the walk reports, in directory order (names sorted bytewise within a directory).
pub(super) enum Item<'a> {
    /// A directory about to be read (watch it before its entries are listed).
    Dir { abs: &'a Path },
    /// A file-like entry: `Candidate` or `Skipped` (never `Dir` or `Missing`).
    Entry {
        rel: &'a str,
        abs: &'a Path,
        class: Class,
    },
    /// A directory whose listing failed or is partial: what lies below it is unknown.
    Incomplete { rel: &'a str },
}

/// Walks the tree from `start_rel` ("" = the root; otherwise a real directory inside the root).
/// Returns `Ok(false)` when `cancelled` stopped it, an error when `start_rel` itself cannot be
/// listed.
pub(super) fn walk(
    ctx: &Ctx,
    start_rel: &str,
    cancelled: &dyn Fn() -> bool,
    visit: &mut dyn FnMut(Item<'_>),
) -> io::Result<bool> {
    let mut stack: Vec<(PathBuf, String)> = vec![(ctx.abs(start_rel), start_rel.to_owned())];
    let mut first = true;
    while let Some((dir_abs, dir_rel)) = stack.pop() {
        if cancelled() {
            return Ok(false);
        }
        visit(Item::Dir { abs: &dir_abs });
        let entries = match fs::read_dir(&dir_abs) {
            Ok(rd) => rd,
            Err(e) if first => return Err(e),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                visit(Item::Entry {
                    rel: &dir_rel,
                    abs: &dir_abs,
                    class: Class::skipped(unreadable(&e)),
                });
                visit(Item::Incomplete { rel: &dir_rel });
                continue;
            }
        };
        first = false;
        let mut incomplete = false;
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(_) => incomplete = true,
            }
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let child_abs = dir_abs.join(&name);
            let Some(name) = name.to_str() else {
                let lossy = name.to_string_lossy();
                let rel = join_rel(&dir_rel, &lossy);
                let reason = if lossy.starts_with('.') {
                    SkipReason::Hidden
                } else {
                    SkipReason::NonUtf8Name
                };
                visit(Item::Entry {
                    rel: &rel,
                    abs: &child_abs,
                    class: Class::skipped(reason),
                });
                continue;
            };
            let child_rel = join_rel(&dir_rel, name);
            match classify(ctx, &child_abs, &child_rel, name) {
                Class::Dir => {
                    if ctx.cfg.recursive {
                        subdirs.push((child_abs, child_rel));
                    }
                }
                Class::Missing => {}
                class => visit(Item::Entry {
                    rel: &child_rel,
                    abs: &child_abs,
                    class,
                }),
            }
        }
        if incomplete {
            visit(Item::Incomplete { rel: &dir_rel });
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(true)
}

/// A full walk of `config.root` applying every filter (content included). Pure: nothing is
/// logged (see [`Skip::log`]); a missing or unreadable root is an error, never an empty list.
pub fn scan(config: &WatchConfig) -> Result<(Vec<ScannedFile>, Vec<Skip>), WatchError> {
    let ctx = Ctx::open(Arc::new(config.clone()))?;
    let mut files = Vec::new();
    let mut skips = Vec::new();
    walk(&ctx, "", &|| false, &mut |item| {
        let Item::Entry { rel, abs, class } = item else {
            return;
        };
        let class = match class {
            Class::Candidate { link_target, .. } => sniff(&ctx, abs, link_target),
            other => other,
        };
        match class {
            Class::Candidate { fp, .. } => files.push(ScannedFile {
                rel_path: rel.to_owned(),
                abs_path: abs.to_path_buf(),
                size: fp.size,
                mtime_ns: fp.mtime_ns,
            }),
            Class::Skipped { reason, .. } => skips.push(Skip {
                path: abs.to_path_buf(),
                rel_path: rel.to_owned(),
                reason,
            }),
            Class::Dir | Class::Missing => {}
        }
    })
    .map_err(|error| WatchError::RootUnavailable {
        root: config.root.clone(),
        error,
    })?;
    Ok((files, skips))
}
