//! The source side of a migration: a LightRAG JSON working directory read as streams.
//!
//! [`SourceDir`] lists the twelve store files (a missing one is an empty store, as LightRAG
//! treats it); [`kv::KvSource`], [`vdb::VdbSource`] and [`graph::GraphSource`] stream them.
//!
//! Invariants: nothing here holds a whole file in memory, so peak memory does not grow with the
//! input; nothing here writes; every error names the file and the byte offset.

pub mod graph;
pub mod kv;
pub mod vdb;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::storage::json::STORE_FILES;
use crate::storage::{
    DOC_STATUS_FILE, GRAPH_FILE, KvNamespace, StorageError, StorageResult, VectorNamespace,
    json_store_dir,
};

/// What a store file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Kv(KvNamespace),
    DocStatus,
    Vector(VectorNamespace),
    Graph,
}

impl StoreKind {
    fn of(name: &str) -> Option<StoreKind> {
        if name == DOC_STATUS_FILE {
            return Some(StoreKind::DocStatus);
        }
        if name == GRAPH_FILE {
            return Some(StoreKind::Graph);
        }
        if let Some(ns) = KvNamespace::ALL
            .into_iter()
            .find(|ns| ns.file_name() == name)
        {
            return Some(StoreKind::Kv(ns));
        }
        VectorNamespace::ALL
            .into_iter()
            .find(|ns| ns.file_name() == name)
            .map(StoreKind::Vector)
    }
}

/// One store file of the source directory.
#[derive(Debug, Clone)]
pub struct StoreFile {
    pub kind: StoreKind,
    pub name: &'static str,
    pub path: PathBuf,
    /// `None` when the file does not exist (an empty store).
    pub size: Option<u64>,
}

/// A LightRAG working directory (or its workspace subfolder) as a migration source.
#[derive(Debug, Clone)]
pub struct SourceDir {
    dir: PathBuf,
    files: Vec<StoreFile>,
}

impl SourceDir {
    /// Lists the stores of `path[/workspace]`; the directory must exist.
    pub fn open(path: &Path, workspace: Option<&str>) -> StorageResult<SourceDir> {
        let dir = json_store_dir(path, workspace);
        let meta = std::fs::metadata(&dir).map_err(|e| StorageError::io(&dir, e))?;
        if !meta.is_dir() {
            return Err(StorageError::Invalid(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let mut files = Vec::with_capacity(STORE_FILES.len());
        for name in STORE_FILES {
            let Some(kind) = StoreKind::of(name) else {
                continue;
            };
            let path = dir.join(name);
            let size = match std::fs::metadata(&path) {
                Ok(m) => Some(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(StorageError::io(&path, e)),
            };
            files.push(StoreFile {
                kind,
                name,
                path,
                size,
            });
        }
        Ok(SourceDir { dir, files })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The twelve store files in [`STORE_FILES`] order, missing ones included.
    pub fn files(&self) -> &[StoreFile] {
        &self.files
    }

    /// The total size of the files present.
    pub fn total_size(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }

    /// Identifies the source as it is now. `--resume` compares the fingerprint saved with a
    /// migration's checkpoint against this one and refuses to continue when they differ: the
    /// ordinals of a checkpoint only mean something for the very same files. It takes each
    /// file's size, mtime (ns) and an MD5 of its first and last 64 KiB — cheap on files of
    /// any size, and LightRAG rewrites whole files, which changes at least size or mtime.
    pub fn fingerprint(&self) -> StorageResult<Fingerprint> {
        let files = self
            .files
            .iter()
            .map(|f| file_fingerprint(f.name, &f.path))
            .collect::<StorageResult<Vec<_>>>()?;
        Ok(Fingerprint { files })
    }
}

/// See [`SourceDir::fingerprint`]; serialisable for the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub files: Vec<FileFingerprint>,
}

/// One file's part of a [`Fingerprint`]; `size` `None` for a missing file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFingerprint {
    pub name: String,
    pub size: Option<u64>,
    pub mtime_ns: i128,
    /// Hex MD5 of the first and the last 64 KiB (the whole file when smaller than 128 KiB).
    pub ends_md5: String,
}

const END_BYTES: u64 = 64 << 10;

fn file_fingerprint(name: &str, path: &Path) -> StorageResult<FileFingerprint> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileFingerprint {
                name: name.to_owned(),
                size: None,
                mtime_ns: 0,
                ends_md5: String::new(),
            });
        }
        Err(e) => return Err(StorageError::io(path, e)),
    };
    let io = |e| StorageError::io(path, e);
    let meta = f.metadata().map_err(io)?;
    let size = meta.len();
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; END_BYTES as usize];
    let head = size.min(END_BYTES);
    read_range(&mut f, 0, &mut buf[..head as usize]).map_err(io)?;
    hasher.update(&buf[..head as usize]);
    // The tail, without re-reading bytes the head already covered.
    let tail_start = size.saturating_sub(END_BYTES).max(head);
    let tail = (size - tail_start) as usize;
    if tail > 0 {
        read_range(&mut f, tail_start, &mut buf[..tail]).map_err(io)?;
        hasher.update(&buf[..tail]);
    }
    let ends_md5 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(FileFingerprint {
        name: name.to_owned(),
        size: Some(size),
        mtime_ns,
        ends_md5,
    })
}

fn read_range(f: &mut File, at: u64, out: &mut [u8]) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(out)
}

#[cfg(test)]
mod tests;
